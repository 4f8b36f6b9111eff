"""The small pieces of markup that pages repeat in every row: a stage, a health badge, a sparkline, a delta,
how long ago something happened, and the once-only token of a row's form.

Simple tags rather than `{% include %}`: a table row renders each of them,
and an include costs a template render of its own per row.
"""

import datetime as dt
import uuid

from django import template
from django.template.defaultfilters import floatformat, title
from django.utils import dateformat, timezone
from django.utils.html import format_html
from django.utils.safestring import mark_safe
from django.utils.timesince import timesince

register = template.Library()


@register.simple_tag
def stage_tag(stage):
    if not stage:
        return mark_safe('<span class="muted">No stage yet</span>')
    return format_html(
        '<span class="stage-tag"><svg class="stage-dot" viewBox="0 0 10 10" aria-hidden="true" focusable="false">'
        '<circle cx="5" cy="5" r="5" fill="{}"/></svg>{}</span>',
        stage.colour,
        stage.name,
    )


@register.simple_tag
def health_badge(score, colour):
    if not colour:
        return mark_safe(
            '<span class="health health-unscored"><span class="health-dot" aria-hidden="true"></span>Not scored</span>'
        )
    score_html = ""
    if score is not None:
        score_html = format_html(' <span class="health-score">{}</span>', floatformat(score, 0))
    return format_html(
        '<span class="health health-{}"><span class="health-dot" aria-hidden="true"></span>{}{}</span>',
        colour,
        title(colour),
        score_html,
    )


@register.simple_tag
def sparkline(spark, empty=""):
    if not spark:
        return format_html('<span class="muted">{}</span>', empty or "No history yet")
    return format_html(
        '<svg class="sparkline" viewBox="0 0 {width} {height}" width="{width}" height="{height}" role="img" '
        'aria-label="{label}" focusable="false"><title>{label}</title><polyline points="{points}" fill="none" '
        'stroke="currentColor" stroke-width="1.5" stroke-linejoin="round" stroke-linecap="round"/>'
        '<circle cx="{x}" cy="{y}" r="2" fill="currentColor"/></svg>',
        width=spark["width"],
        height=spark["height"],
        label=spark["label"],
        points=spark["points"],
        x=spark["end"][0],
        y=spark["end"][1],
    )


@register.simple_tag
def delta(value):
    """A change in points: up, down or none, in words for screen readers too; a dash without a score.

    A template passes "" for a change it cannot look up (an account not scored yet).
    """
    if value is None or value == "":
        return mark_safe('<span class="muted">—</span>')
    if value == 0:
        return mark_safe('<span class="delta">±0</span>')
    direction, arrow, sign = ("up", "▲", "+") if value > 0 else ("down", "▼", "")
    return format_html(
        '<span class="delta {direction}"><span aria-hidden="true">{arrow}</span> {sign}{points}'
        '<span class="visually-hidden"> points {direction}</span></span>',
        direction=direction,
        arrow=arrow,
        sign=sign,
        points=floatformat(value, "-1"),
    )


@register.simple_tag
def time_ago(moment):
    """When something happened, as "3 hours ago" ("just now" within the minute), its full time on hover."""
    local = timezone.localtime(moment)
    words = "just now" if timezone.now() - moment < dt.timedelta(minutes=1) else f"{timesince(moment)} ago"
    return format_html(
        '<time datetime="{}" title="{}">{}</time>',
        dateformat.format(local, "c"),
        dateformat.format(local, "M j, Y H:i"),
        words,
    )


@register.simple_tag
def new_token():
    """A fresh UUID for a form that must take effect once, however often it is sent."""
    return uuid.uuid4()
