"""The calendar invitation attached to a demo email (RFC 5545, built with icalendar)."""

import datetime as dt

from icalendar import Calendar, Event, vCalAddress, vText


def invitation_ics(
    *, uid, start, end, summary, description, organizer_email, organizer_name, attendee_email, attendee_name, now
):
    calendar = Calendar()
    calendar.add("prodid", "-//csplatform//playbooks//EN")
    calendar.add("version", "2.0")
    calendar.add("method", "REQUEST")
    event = Event()
    event.add("uid", uid)
    event.add("dtstamp", now.astimezone(dt.UTC))
    event.add("dtstart", start.astimezone(dt.UTC))
    event.add("dtend", end.astimezone(dt.UTC))
    event.add("summary", summary)
    event.add("description", description)
    organizer = vCalAddress(f"mailto:{organizer_email}")
    organizer.params["cn"] = vText(organizer_name or organizer_email)
    event["organizer"] = organizer
    attendee = vCalAddress(f"mailto:{attendee_email}")
    attendee.params["cn"] = vText(attendee_name or attendee_email)
    attendee.params["role"] = vText("REQ-PARTICIPANT")
    attendee.params["rsvp"] = vText("TRUE")
    event.add("attendee", attendee, encode=0)
    event.add("status", "CONFIRMED")
    event.add("sequence", 0)
    calendar.add_component(event)
    return calendar.to_ical().decode()
