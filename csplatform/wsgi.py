import gc
import os

from django.core.wsgi import get_wsgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "csplatform.settings")
application = get_wsgi_application()
# Everything loaded so far (Django, the apps and their models) lives as long as the
# process: keep the garbage collector from walking it again on every collection.
gc.freeze()
