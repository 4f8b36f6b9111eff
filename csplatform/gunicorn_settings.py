"""Gunicorn's settings for every way the web server runs (`-c python:csplatform.gunicorn_settings`).

`make run`'s Procfile, the Dockerfile and the Compose file name their own
address and worker count on the command line; the rest is here, once.
"""

accesslog = "-"
# Gunicorn's usual line, then the time taken and the request's id: the X-Request-ID that the answer
# names and that the request's own log lines and the Celery tasks it enqueued carry.
access_log_format = '%(h)s %(l)s %(u)s %(t)s "%(r)s" %(s)s %(b)s "%(f)s" "%(a)s" %(M)sms %({x-request-id}o)s'
# Gunicorn's control socket (for gunicornc) is not used here.
control_socket_disable = True
