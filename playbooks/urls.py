from django.urls import path

from . import views

# Public pages reached from emails; mounted at the site root ("nps/<token>/").
urlpatterns = [path("nps/<str:token>/", views.nps_answer, name="nps-answer")]
