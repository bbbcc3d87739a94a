"""The baseline: a minimal Flask app rendering a small template, served like tvwidget."""
from flask import Flask, render_template

app = Flask(__name__)


@app.get("/")
def index():
    return render_template("hello.html", name="agent")
