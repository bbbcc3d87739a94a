from django.urls import path

from . import views

app_name = "tvwidget_helpdesk"
urlpatterns = [
    path("webhook/", views.webhook, name="webhook"),
    path("tickets/<int:ticket_id>/token/", views.token, name="token"),
    path("admin/", views.admin_area, name="admin"),
]
