"""The composition root: settings in, processes out (``sitroom up|worker|api|connect|topics``)."""
