"""The live chat web app (Starlette + server-sent events): ``make web`` or
``python -m examples.web [--store DIR] [--port N]``."""
