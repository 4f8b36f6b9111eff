from django.apps import AppConfig


class RulesConfig(AppConfig):
    name = "csplatform.rules"
    label = "rules"
