"""Run the live chat: ``python -m examples.web [--store DIR] [--host H] [--port N]``.

Serves on 127.0.0.1 by default (``--port 0`` picks a free port) and prints the URL once the
socket is listening, so a script can wait for that line. Open that URL: the server answers
requests made to the address it listens on (and ``localhost`` for a loopback one), never to
another name (see ``examples/web/app.py``). The store defaults to the default store
(``$SQLITE_CELLS_STORE`` or ``./.sqlite-cells``). Ctrl-C, or SIGTERM (``kill``), stops the
server and closes the runtime.
"""

from __future__ import annotations

import argparse
import contextlib
import errno
import ipaddress
import signal
import socket
import sys
from types import FrameType
from typing import Any

import uvicorn

import sqlite_cells as sc
from examples.web.app import Chat, create_app


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m examples.web", description=__doc__)
    parser.add_argument("--store", help="store directory (default: the default store)")
    parser.add_argument("--host", default="127.0.0.1", help="address to listen on")
    parser.add_argument("--port", type=_port, default=8000, help="port (0: any free port)")
    args = parser.parse_args(argv)
    # The socket listens here, before the URL is printed: whoever reads the URL can connect.
    try:
        family = socket.getaddrinfo(args.host, args.port, type=socket.SOCK_STREAM)[0][0]
    except (OSError, UnicodeError) as exc:  # a name that does not resolve
        print(
            f"error: cannot listen on {args.host!r} ({exc}): give an address or a name this "
            "machine resolves with --host (default 127.0.0.1)",
            file=sys.stderr,
        )
        return 1
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((args.host, args.port))
    except OSError as exc:
        sock.close()
        if exc.errno == errno.EADDRINUSE:
            advice = "another program uses that port: choose another with --port N (0: any free)"
        elif exc.errno in (errno.EADDRNOTAVAIL, errno.EAFNOSUPPORT):
            advice = "this machine has no such address: give one of its own with --host"
        else:
            advice = "choose another --host or --port (0: any free port)"
        print(
            f"error: cannot listen on {args.host}:{args.port} ({exc.strerror or exc}): {advice}",
            file=sys.stderr,
        )
        return 1
    sock.listen(2048)  # (uvicorn listens on it again: harmless)
    host, port = sock.getsockname()[:2]
    shown = f"[{host}]" if ":" in host else host  # an IPv6 address, as URLs write it
    with sc.Runtime(args.store) as rt:
        chat = Chat(rt)
        config = uvicorn.Config(
            create_app(chat, hosts=_hosts(args.host, shown, port)),
            log_level="warning",
            timeout_graceful_shutdown=1,
            lifespan="off",
        )
        server = _Server(config, chat)
        print(f"sqlite-cells chat on http://{shown}:{port}/ (store {rt.store})", flush=True)
        # uvicorn stops gracefully on SIGTERM too, then raises it again once it has put back
        # the handler it found: with the default one there, `kill` ended the process before
        # the runtime closed. This one ends the run as Ctrl-C does.
        terminate = _on_sigterm(_stop)
        try:
            server.run(sockets=[sock])
        except (KeyboardInterrupt, _Terminated):
            pass  # uvicorn stopped gracefully, then passes the signal on: we are stopping anyway
        finally:
            _on_sigterm(signal.SIG_IGN)  # closing: a second `kill` does not cut it short
            chat.close()
    _on_sigterm(terminate)
    return 0


class _Terminated(Exception):
    """SIGTERM (``kill``) reached the server: it stops, closing its runtime."""


def _stop(signum: int, frame: FrameType | None) -> None:
    raise _Terminated


def _on_sigterm(handler: Any) -> Any:
    """Set SIGTERM's handler (only the main thread may); returns the one it replaces."""
    with contextlib.suppress(ValueError):  # not the main thread: the signal is not ours
        previous = signal.signal(signal.SIGTERM, handler)
        return previous if previous is not None else signal.SIG_DFL
    return signal.SIG_DFL


def _hosts(given: str, shown: str, port: int) -> set[str]:
    """The ``Host`` values of the address served: as given with ``--host`` and as bound,
    ``localhost`` for a loopback address, and any IP address (``*``) for a server bound to every
    interface, with the port (a browser leaves out port 80)."""
    names = {given.lower(), shown.lower()}
    address = ipaddress.ip_address(shown.strip("[]"))
    if address.is_loopback:
        names.add("localhost")
    if address.is_unspecified:  # bound to every interface: opened by any of its addresses
        names.add("*")
    return {f"{name}:{port}" for name in names} | (names if port == 80 else set())


def _port(text: str) -> int:
    """``--port``: a TCP port number (argparse says what is wrong, exit 2)."""
    try:
        port = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a port number: {text!r}") from None
    if not 0 <= port <= 65535:
        raise argparse.ArgumentTypeError(f"a port is 0 to 65535, not {port}")
    return port


class _Server(uvicorn.Server):
    """Ctrl-C ends the open pages' event streams first, so the graceful shutdown has nothing
    left to cancel (a cancelled stream is logged as an error with its traceback). The app has
    no lifespan (``lifespan="off"``): a second Ctrl-C cancelled uvicorn's lifespan task, which
    was logged with its traceback."""

    def __init__(self, config: uvicorn.Config, chat: Chat) -> None:
        super().__init__(config)
        self._chat = chat

    def handle_exit(self, sig: int, frame: FrameType | None) -> None:
        self._chat.end_streams()
        super().handle_exit(sig, frame)


if __name__ == "__main__":
    sys.exit(main())
