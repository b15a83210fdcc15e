"""A FreeSWITCH stand-in speaking the real event-socket protocol, for fsacd's tests and demo.

Everything runs in gevent greenlets in the calling process::

    from fsacd.standin import FakeFreeSwitch, PhoneBehaviour

    fs = FakeFreeSwitch(socket_target=("127.0.0.1", 8084), inbound=("127.0.0.1", 0),
                        password="ClueCon")
    fs.start()
    fs.inbound_address                       # ("127.0.0.1", port) of the inbound ESL server
    fs.phones.register("user/1001@pbx.example", PhoneBehaviour.answers(after=0.5, talk=2.0))
    fs.phones.register("loopback/noanswer-*", PhoneBehaviour.never_answers())
    call = fs.place_call(destination="5000", caller_number="+4922129191999",
                         caller_name="Erika Muster", variables={"fsacd_route": "queue:support"})
    call.wait_bridged(5)                     # the Leg it was bridged to
    call.wait_hangup(10)                     # hangup cause
    call.apps, call.heard, call.events_sent, call.variables, call.legs
    fs.legs, fs.channels, fs.execute_api("show channels")
    fs.stop()

Outbound: ``place_call`` creates an inbound caller channel (shaped like the recorded
``loopback/5000-b``) whose dialplan is ``socket <socket_target> async full``: it connects to
the controller, answers ``connect`` with the channel data and then serves myevents, linger,
sendmsg, api ... exactly as mod_event_socket does (see listener.py, apps.py). Inbound: a
server like port 8021 (``auth``, ``api``, ``bgapi``, ``event``, ``filter`` ...).

Test peers speaking raw bytes: ``fsacd.standin.testing.ScriptedController`` (a controller
for ``socket ... async full``) and ``InboundClient``. More in ``fsacd/standin/README.md``.

Phones: ``PhoneBehaviour.answers(after, talk)``, ``never_answers()``, ``busy()``,
``rejects()``, ``early_media(give_up=...)``, ``unregistered()``, ``answers_then_hangs_up()``,
``fails(cause)``; unknown endpoints use ``fs.phones.default`` (USER_NOT_REGISTERED).

Deliberate FreeSWITCH behaviours worth knowing (all verified against its source):

- ``linger`` without a time keeps the socket open after the hangup until the controller
  closes it; ``linger N`` closes N seconds after the disconnect notice; without linger the
  socket closes right after CHANNEL_HANGUP with a ``Content-Disposition: disconnect`` notice.
- ``sendmsg`` after the hangup still answers ``+OK`` (the command is queued and never runs);
  ``api uuid_*`` on the hung-up channel answers ``-ERR No such channel!``.
- When the controller closes the socket the channel is not hung up: a running application
  (e.g. ``playback local_stream://moh``) keeps running; with ``socket_resume=true`` it is
  interrupted. When the park ends the dialplan continues after ``socket``
  (``dialplan_after_socket``); at its end the channel hangs up with NORMAL_CLEARING.
- An unknown application hangs the channel up with DESTINATION_OUT_OF_ORDER and sends no
  CHANNEL_EXECUTE (switch_core_session_execute_application).
- ``transfer_ringback`` is read from the caller channel only (not from ``{}`` variables).
"""

from .calls import Call
from .channel import Channel
from .phones import Display, Leg, PhoneBehaviour, PhoneRegistry
from .server import FakeFreeSwitch

__all__ = [
    "Call",
    "Channel",
    "Display",
    "FakeFreeSwitch",
    "Leg",
    "PhoneBehaviour",
    "PhoneRegistry",
]
