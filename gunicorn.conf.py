"""Gunicorn's settings: production's, and the benches' (bench/synthetic.py serves the site
with this file, so what is measured is what runs).

``gunicorn config.wsgi -c gunicorn.conf.py -b 0.0.0.0:8000``. Sync workers, two a core:
a request mostly waits on PostgreSQL, so a second process a core keeps the core busy
meanwhile. Measured at 20,000 members on two shared cores (bench/api_orders.py, 8
clients): 4 sync workers served 54 orders/s; threaded workers did worse (3 x 4 threads
36/s, 4 x 2 threads 36/s), the threads of a process waiting on one interpreter lock.
``WEB_CONCURRENCY`` sets the number of workers; each holds one database connection
(``DB_CONN_MAX_AGE``).
"""

import multiprocessing
import os

worker_class = "sync"
workers = int(os.environ.get("WEB_CONCURRENCY", 2 * multiprocessing.cpu_count()))
