"""``python -m fsacd.standin``: run the FreeSWITCH stand-in for manual tests and demos.

Example::

    python -m fsacd.standin --socket 127.0.0.1:8084 --inbound 127.0.0.1:8021 \\
        --phone 'user/1001@*=answers:1:20' --phone 'user/1002@*=busy' \\
        --calls 3 --interval 5

Calls are placed every ``--interval`` seconds (``--calls 0``: none; use the inbound socket's
``originate`` or ``place_call`` from Python instead). Ctrl-C stops.
"""

from __future__ import annotations

import argparse
import logging
import sys


def _hostport(text: str) -> tuple[str, int]:
    host, _, port = text.rpartition(":")
    return host or "127.0.0.1", int(port)


def main(argv: list[str] | None = None) -> int:
    from gevent import monkey

    monkey.patch_all()
    import gevent

    from .phones import PhoneBehaviour
    from .server import FakeFreeSwitch

    ap = argparse.ArgumentParser(prog="python -m fsacd.standin", description=__doc__.split("\n")[0])
    ap.add_argument("--socket", default="127.0.0.1:8084", help="controller outbound server")
    ap.add_argument("--inbound", default="127.0.0.1:8021", help="inbound ESL listen address")
    ap.add_argument("--password", default="ClueCon")
    ap.add_argument(
        "--phone",
        action="append",
        default=[],
        metavar="ENDPOINT=BEHAVIOUR",
        help="e.g. 'user/1001@*=answers:1:20', 'loopback/busy-*=busy', 'user/*=rings'",
    )
    ap.add_argument("--default-phone", default="unregistered")
    ap.add_argument("--calls", type=int, default=0, help="callers to place")
    ap.add_argument("--interval", type=float, default=5.0)
    ap.add_argument("--destination", default="5000")
    ap.add_argument("--caller-number", default="+4922129191999")
    ap.add_argument("--caller-name", default="Erika Muster")
    ap.add_argument("--route", default=None, help="fsacd_route variable for placed calls")
    ap.add_argument("--hangup-after", type=float, default=None)
    ap.add_argument("--duration", type=float, default=None, help="stop after N seconds")
    args = ap.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    fs = FakeFreeSwitch(
        socket_target=_hostport(args.socket),
        inbound=_hostport(args.inbound) if args.inbound else None,
        password=args.password,
        default_phone=PhoneBehaviour.parse(args.default_phone),
    )
    for spec in args.phone:
        endpoint, _, behaviour = spec.partition("=")
        fs.phones.register(endpoint, PhoneBehaviour.parse(behaviour))
    fs.start()
    print(f"stand-in up: inbound {fs.inbound_address}, controller {fs.socket_target}", flush=True)

    def caller_loop() -> None:
        for i in range(args.calls):
            variables = {"fsacd_route": args.route} if args.route else None
            call = fs.place_call(
                destination=args.destination,
                caller_number=args.caller_number,
                caller_name=args.caller_name,
                variables=variables,
                hangup_after=args.hangup_after,
            )
            print(f"call {i + 1}: {call.uuid}", flush=True)
            gevent.sleep(args.interval)

    gevent.spawn(caller_loop)
    try:
        gevent.sleep(args.duration) if args.duration else gevent.wait()
    except KeyboardInterrupt:
        pass
    finally:
        fs.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
