"""The ``oet`` command-line client: drives an OET REST server over HTTP.

``main`` builds the commands, ``client`` speaks the REST API, ``arguments``
reads script arguments off the command line and ``formatting`` prints tables
and events. It shares only ``oet.domain`` and ``oet.config`` with the server.
"""
