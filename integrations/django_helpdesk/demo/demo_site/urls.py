from django.contrib import admin
from django.urls import include, path

urlpatterns = [
    path("admin/", admin.site.urls),
    path("tvwidget/", include("tvwidget_helpdesk.urls")),
    path("", include("helpdesk.urls", namespace="helpdesk")),
]
