"""AWS Lambda handlers: the serverless deployment (``deploy/aws/template.yaml``).

One module per function, each a thin adapter between an AWS event and the pipeline the CLI
runs (built by :mod:`vulnwatch.build` from the same configuration format):

``schedule.handler``  EventBridge schedule -> one SQS message per watched repository
``collect.handler``   SQS -> scan where due, record snapshots (diff + outbox, one commit each)
``notify.handler``    the table's stream -> deliver the outbox (same formats and routing)
``rematch.handler``   a new OSV index in S3 -> re-match stored inventories, write what moved
``replay``            ``python -m vulnwatch.aws_lambda.replay``: re-run notify over what its DLQ kept

Handlers hold no logic of their own: :meth:`~vulnwatch.pipeline.Pipeline.work_items`,
:meth:`~vulnwatch.pipeline.Pipeline.collect`, :meth:`~vulnwatch.pipeline.Pipeline.deliver_events`
and :meth:`~vulnwatch.pipeline.Pipeline.rematch` do the work.
"""
