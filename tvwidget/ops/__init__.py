"""Operating tvwidget: the ``flask tvwidget`` commands, the worker, metrics and the doctor."""
