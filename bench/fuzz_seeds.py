"""Rebuild ``tests/fuzz_corpus/``: small seed inputs cut from the real switch captures and
the test fixtures, so the fuzzer starts from what switches, phones and admins really send.

    python bench/fuzz_seeds.py [--reference DIR]

``DIR`` is the directory of captures described by its INDEX.md (default: ``shared/reference``
next to the repository). Seeds are excerpts: single messages, a few headers of the big
``connect`` reply, never whole captures.
"""

from __future__ import annotations

import argparse
import base64
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from bench.fuzz_targets import PROV_TOKEN, SEP  # noqa: E402

CORPUS = ROOT / "tests" / "fuzz_corpus"


def esl_messages(data: bytes, limit: int) -> list[bytes]:
    """Cut an Event Socket byte stream into its framed messages (header block + body)."""
    out, pos = [], 0
    while pos < len(data) and len(out) < limit:
        end = data.find(b"\n\n", pos)
        if end < 0:
            break
        head = data[pos:end]
        size = 0
        for line in head.split(b"\n"):
            if line.startswith(b"Content-Length: "):
                size = int(line[16:])
        out.append(data[pos:end + 2 + size])
        pos = end + 2 + size
    return out


def shorten_event(message: bytes, keep: int) -> bytes:
    """An event message with only its first ``keep`` body headers (Content-Length fixed)."""
    head, _, body = message.partition(b"\n\n")
    lines = body.split(b"\n")[:keep]
    new_body = b"\n".join(lines) + b"\n\n"
    head = b"\n".join(b"Content-Length: %d" % len(new_body) if h.startswith(b"Content-Length")
                      else h for h in head.split(b"\n"))
    return head + b"\n\n" + new_body


def build(ref: Path) -> dict[str, dict[str, bytes]]:
    seeds: dict[str, dict[str, bytes]] = {}

    def read(name: str) -> bytes:
        return (ref / name).read_bytes()

    # FastAGI: the env block, and the replies that follow it (switch -> client).
    env: dict[str, bytes] = {}
    replies: dict[str, bytes] = {}
    for name in ("login-ok", "pin-timeout", "hangup-mid-pin", "bad-command"):
        data = read(f"asterisk-fastagi-{name}.s2c.bin")
        block, _, rest = data.partition(b"\n\n")
        env[name] = block + b"\n\n"
        replies[name] = rest[:1600]
    seeds["agi_env"] = env
    seeds["agi_reply"] = replies

    # Event Socket: the connect reply's first and last headers, replies, events, notices.
    esl: dict[str, bytes] = {}
    outbound = esl_messages(read("freeswitch-outbound-login-ok.s2c.bin"), 8)
    connect = outbound[0].rstrip(b"\n").split(b"\n")
    esl["connect-reply"] = b"\n".join(connect[:25] + connect[-4:]) + b"\n\n"
    esl["command-replies"] = b"".join(outbound[1:4])
    esl["event"] = shorten_event(outbound[4], 30)
    inbound = esl_messages(read("freeswitch-inbound-session.s2c.bin"), 12)
    for n, msg in enumerate(inbound):
        if len(msg) <= 1500:
            esl[f"inbound-{n:02d}"] = msg
    esl["authfail"] = read("freeswitch-inbound-session.authfail.s2c.bin")
    # the reader's first byte picks the recv chunk size: prefix one
    seeds["esl_frames"] = {k: b"\x07" + v for k, v in esl.items()}

    # SIP: the NOTIFYs phones received, and a PnP SUBSCRIBE as the SIPp scenario sends it.
    sip = {name: read(name) for name in (
        "asterisk-notify-received.sip", "freeswitch-notify-received.sip",
        "freeswitch-notify-explicit-uri-received.sip")}
    sip["pnp-subscribe"] = (
        b"SUBSCRIBE sip:MAC%3a0015651234ab@224.0.1.75 SIP/2.0\r\n"
        b"Via: SIP/2.0/UDP 127.0.0.1:5070;branch=z9hG4bK-1-0;rport\r\n"
        b"From: <sip:MAC%3a0015651234ab@224.0.1.75>;tag=1SIPpTag001\r\n"
        b"To: <sip:MAC%3a0015651234ab@224.0.1.75>\r\nCall-ID: 1-1@127.0.0.1\r\n"
        b"CSeq: 1 SUBSCRIBE\r\nContact: <sip:127.0.0.1:5070>\r\n"
        b'Event: ua-profile;profile-type="device";vendor="Yealink";model="T54W";'
        b'version="96.86.0.100"\r\nAccept: application/url\r\nExpires: 0\r\n'
        b"Max-Forwards: 70\r\nUser-Agent: Yealink T54W 96.86.0.100\r\n"
        b"Content-Length: 0\r\n\r\n")
    seeds["pnp_sip"] = sip

    seeds["mac"] = {"colon": b"00:15:65:12:34:AB", "cisco": b"0015.6512.34ab",
                    "dash": b"00-15-65-12-34-ab", "bare": b"0015651234ab"}
    seeds["inventory"] = {
        "lan": SEP.join([b"00:15:65:12:34:ab", b"8001", b"idle-secret", b"yealink", b"T54W",
                         b"Desk 1", b"pnp", b"lan", b"", b"", b"1234"]),
        "sbc": SEP.join([b"805ec0aabbcc", b"8002", b"pw", b"snom", b"D785", b"Lobby", b"rps",
                         b"sbc", b"sbc.example.com:5061", b"lobby.phone", b"87654321"]),
    }
    from tests.test_importers import FS_XML, PJSIP, VOICEMAIL

    seeds["import_asterisk"] = {"pjsip+voicemail": PJSIP.encode() + SEP + VOICEMAIL.encode()}
    seeds["import_freeswitch"] = {"directory": FS_XML.encode()}
    seeds["import_csv"] = {"csv": b"extension,name,pin,sip_password,hotdesk\n"
                                  b"101,Alice,1234,alice-sip,yes\n"
                                  b'102,"Bob, Jr.",,bob-sip,no\n# comment\n103,,98765,,\n'}
    seeds["prov_auth"] = {
        "basic": SEP.join([b"Basic MDA6MTU6NjU6MTI6MzQ6YWI6dG9rZW4=", b"GET", b"1000000000.ab",
                           b"192.0.2.0/24, 2001:db8::/32", b"127.0.0.1:5062"]),
        "digest": SEP.join([b'Digest username="0015651234ab", realm="hotdesk provisioning", '
                            b'nonce="1000000000.00", uri="/prov/x/y.cfg", qop=auth, '
                            b'nc=00000001, cnonce="c1", response="0123456789abcdef"', b"GET",
                            b"999999990.deadbeef", b"10.0.0.0/8 127.0.0.0/8", b"[::1]:5060"]),
    }
    token = PROV_TOKEN.encode()
    seeds["prov_http"] = {
        "none": b"\x00" + token + b"/0015651234ab.cfg" + SEP + SEP + b"Yealink SIP-T54W",
        "basic": b"\x01" + token + b"/y000000000000.cfg" + SEP
        + b"Basic " + base64.b64encode(b"0015651234ab:" + token) + SEP + b"Yealink",
        "digest": b"\x02" + token + b"/0015651234ab.cfg" + SEP
        + b'Digest username="0015651234ab", realm="hotdesk provisioning", nonce="1.x", '
          b'uri="/prov/t/0015651234ab.cfg", response="00"' + SEP + b"Yealink",
        "traversal": b"\x00" + token + b"/../../etc/passwd",
    }
    from hotdesk.settings import example_ini

    ini = example_ini().encode()
    seeds["config_ini"] = {
        "example": ini[:3000],
        "small": b"[database]\nurl = sqlite:///x.db\n[policy]\ndaily_logout_time = 23:30\n"
                 b"timezone = Europe/Berlin\n" + SEP + b"agi_listen=127.0.0.1:4573" + SEP
                 + b"pnp_rate_limit=5",
    }
    return seeds


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--reference", default=str(ROOT.parent / "shared" / "reference"))
    args = ap.parse_args()
    ref = Path(args.reference)
    if not (ref / "INDEX.md").exists():
        print(f"no captures at {ref} (expected INDEX.md there)", file=sys.stderr)
        return 1
    for parser, files in build(ref).items():
        folder = CORPUS / parser
        folder.mkdir(parents=True, exist_ok=True)
        for name, data in files.items():
            (folder / name).write_bytes(data)
        print(f"{parser}: {len(files)} seeds, {sum(map(len, files.values()))} bytes")
    return 0


if __name__ == "__main__":
    sys.exit(main())
