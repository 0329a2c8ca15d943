"""The OET operator: runs each Procedure as a runner Job and ends it when its runner cannot.

This slice holds the pure parts the kopf handlers will delegate to: the Job
manifest (:mod:`builders`), how a dead runner ends its procedure
(:mod:`deaths`), status patches (:mod:`status`) and retention
(:mod:`retention`). None of them talks to the API server.
"""
