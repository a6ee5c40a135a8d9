"""The training-queue contract shared by the worker, the server and the CLI.

`jobs.spec` (the payload schema), `jobs.status` (one status vocabulary), `jobs.views` (what a
caller sees of a job), `jobs.meta` (the ``job.meta`` keys the worker writes and readers parse),
`jobs.settings` (the queue's settings), `jobs.queue` (submit, get, list, cancel, follow),
`jobs.follow` (following a job through outages), `jobs.tensorboard` (where a job's event files
live) and `jobs.errors`. Only `jobs.rq_layout` knows
how RQ lays a job out in Redis, and nothing here imports `rq`: a process that submits or reads
jobs (the gRPC server) needs neither RQ nor the worker. Submodules are imported explicitly.
"""
