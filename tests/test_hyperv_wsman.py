"""Protocol tests of the pypsrp transport against a replay WSMan endpoint on 127.0.0.1.

No Windows host exists on the machines this harness is developed on. Like pypsrp's own
test suite (which replays recorded WSMan exchanges through a fake transport), these
tests answer pypsrp's real HTTP requests with canned WSMan replies; here they come from
a local HTTP(S) server, so TLS, certificate validation and the HTTP status handling are
the real ones. The PSRP messages in the replies (session capability, runspace-pool
state, pipeline output, error records, pipeline state) are built with pypsrp's own
serializer. A real WinRM service may differ in details these replies do not cover.
"""

from __future__ import annotations

import base64
import hashlib
import json
import logging
import re
import socket
import struct
import uuid
import xml.etree.ElementTree as ET
from collections.abc import Callable
from pathlib import Path

import pytest
from hyperv_wsman_server import ReplayServer, Request, self_signed
from pypsrp.messages import (
    ErrorRecordMessage,
    MessageType,
    PipelineState,
    RunspacePoolStateMessage,
    SessionCapability,
)
from pypsrp.powershell import Fragment
from pypsrp.serializer import Serializer

from harness.backends.hyperv.transport import (
    RemoteOptions,
    RemotePowerShell,
    ScriptError,
    TransportError,
    script_text,
)

NS = {"s": "http://www.w3.org/2003/05/soap-envelope",
      "wsa": "http://schemas.xmlsoap.org/ws/2004/08/addressing",
      "rsp": "http://schemas.microsoft.com/wbem/wsman/1/windows/shell"}
SOAP = {"Content-Type": "application/soap+xml;charset=UTF-8"}
PASSWORD = "S3cret-Hyper-V!"
COMPLETED, FAILED, OPENED = 4, 5, 2
# What WinRM answers when the shell was deleted (idle timeout, service restart).
SHELL_GONE = (f'<s:Envelope xmlns:s="{NS["s"]}"><s:Body><s:Fault><s:Code><s:Value>s:Sender'
              "</s:Value></s:Code><s:Reason><s:Text xml:lang=\"en-US\">The request for the "
              "Windows Remote Shell with ShellId 1 failed because the shell was not found on the "
              "server.</s:Text></s:Reason><s:Detail><f:WSManFault xmlns:f=\"http://schemas."
              'microsoft.com/wbem/wsman/1/wsmanfault" Code="2150858843" Machine="hv01"><f:Message>'
              "The shell was not found.</f:Message></f:WSManFault></s:Detail></s:Fault></s:Body>"
              "</s:Envelope>").encode()


class FakeWinRM:
    """Answers pypsrp's WSMan requests for one runspace pool and its pipelines: Create
    (the pool opens), Command (a pipeline; its messages are queued), Receive (the queued
    messages, fragmented), anything else (Signal, Delete) with an empty reply."""

    def __init__(self, outputs: list[str] | Callable[[bytes], list[str]],
                 errors: list[str] = (), state: int = COMPLETED, *,
                 fail_commands: int = 0, max_envelope_kb: int = 0) -> None:
        self.outputs, self.errors, self.state = outputs, list(errors), state
        self.fail_commands = fail_commands  # the first N pipelines find their shell gone
        self.max_envelope_kb = max_envelope_kb  # what the host's WinRM config says, if read
        self.serializer = Serializer()
        self.rpid = ""
        self.object_id = 1
        self.queued: dict[str | None, list[bytes]] = {}
        self.pipelines: list[bytes] = []  # the CREATE_PIPELINE messages pypsrp sent

    def message(self, kind: int, pid: str | None, obj: object) -> bytes:
        body = ET.tostring(self.serializer.serialize(obj), encoding="utf-8", method="xml")
        return (struct.pack("<II", 1, kind) + uuid.UUID(self.rpid).bytes_le
                + (uuid.UUID(pid) if pid else uuid.UUID(int=0)).bytes_le + body)

    def fragments(self, messages: list[bytes]) -> str:
        data = b""
        for m in messages:
            data += Fragment(self.object_id, 0, m, True, True).pack()
            self.object_id += 1
        return base64.b64encode(data).decode()

    def error_record(self, text: str) -> ErrorRecordMessage:
        record = ErrorRecordMessage(fq_error="HyperV.Error", category=0, invocation=False,
                                    extended_info_present=False, message=text)
        for attr, _meta in record._extended_properties:
            if not hasattr(record, attr):
                setattr(record, attr, None)
        record._to_string = text  # what a host sends as the record's ToString
        return record

    @staticmethod
    def envelope(action: str, relates: str, body: str) -> bytes:
        return (f'<s:Envelope xmlns:s="{NS["s"]}" xmlns:wsa="{NS["wsa"]}" xmlns:rsp="{NS["rsp"]}" '
                'xmlns:wsman="http://schemas.dmtf.org/wbem/wsman/1/wsman.xsd" '
                'xmlns:wst="http://schemas.xmlsoap.org/ws/2004/09/transfer"><s:Header>'
                f"<wsa:Action>{action}Response</wsa:Action><wsa:MessageID>uuid:{uuid.uuid4()}"
                f"</wsa:MessageID><wsa:RelatesTo>{relates}</wsa:RelatesTo></s:Header>"
                f"<s:Body>{body}</s:Body></s:Envelope>").encode()

    def __call__(self, req: Request) -> tuple[int, dict[str, str], bytes]:
        root = ET.fromstring(req.body)
        action = root.findtext("s:Header/wsa:Action", "", NS)
        relates = root.findtext("s:Header/wsa:MessageID", "", NS)
        verb = action.rsplit("/", 1)[-1]
        body = ""
        if verb == "Create":
            self.rpid = root.find("s:Body/rsp:Shell", NS).attrib["ShellId"]  # type: ignore[union-attr]
            self.queued[None] = [
                self.message(MessageType.SESSION_CAPABILITY, None,
                             SessionCapability("2.3", "2.0", "1.1.0.1")),
                self.message(MessageType.RUNSPACEPOOL_STATE, None, RunspacePoolStateMessage(state=OPENED))]
            body = ("<wst:ResourceCreated><wsa:Address>https://127.0.0.1/wsman</wsa:Address>"
                    "<wsa:ReferenceParameters><wsman:SelectorSet><wsman:Selector Name=\"ShellId\">"
                    f"{self.rpid}</wsman:Selector></wsman:SelectorSet></wsa:ReferenceParameters>"
                    f"</wst:ResourceCreated><rsp:Shell><rsp:ShellId>{self.rpid}</rsp:ShellId></rsp:Shell>")
        elif verb == "Command":
            command = root.find("s:Body/rsp:CommandLine", NS)
            assert command is not None
            cid = command.attrib["CommandId"]
            pipeline = base64.b64decode(command.findtext("rsp:Arguments", "", NS))
            self.pipelines.append(pipeline)
            if self.fail_commands > 0:
                self.fail_commands -= 1
                return 500, SOAP, SHELL_GONE
            outputs = self.outputs(pipeline) if callable(self.outputs) else self.outputs
            self.queued[cid] = [
                *(self.message(MessageType.PIPELINE_OUTPUT, cid, o) for o in outputs),
                *(self.message(MessageType.ERROR_RECORD, cid, self.error_record(e)) for e in self.errors),
                self.message(MessageType.PIPELINE_STATE, cid, PipelineState(state=self.state))]
            body = f"<rsp:CommandResponse><rsp:CommandId>{cid}</rsp:CommandId></rsp:CommandResponse>"
        elif verb == "Get" and self.max_envelope_kb:
            body = ('<cfg:Config xmlns:cfg="http://schemas.microsoft.com/wbem/wsman/1/config">'
                    f"<cfg:MaxEnvelopeSizekb>{self.max_envelope_kb}</cfg:MaxEnvelopeSizekb>"
                    "</cfg:Config>")
        elif verb == "Receive":
            stream = root.find("s:Body/rsp:Receive/rsp:DesiredStream", NS)
            cid = stream.attrib.get("CommandId") if stream is not None else None
            attr = f' CommandId="{cid}"' if cid else ""
            done = (f'<rsp:CommandState{attr} State="http://schemas.microsoft.com/wbem/wsman/1/'
                    'windows/shell/CommandState/Done"/>' if cid else "")
            body = (f'<rsp:ReceiveResponse><rsp:Stream Name="stdout"{attr}>'
                    f"{self.fragments(self.queued.pop(cid, []))}</rsp:Stream>{done}</rsp:ReceiveResponse>")
        return 200, SOAP, self.envelope(action, relates, body)


@pytest.fixture(scope="module")
def certs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    d = tmp_path_factory.mktemp("certs")
    server, server_key = self_signed(d, "winrm-server")
    client, client_key = self_signed(d, "harness-client", ip=None)
    return {"server": server, "server_key": server_key, "client": client, "client_key": client_key}


@pytest.fixture
def serve(certs):
    servers: list[ReplayServer] = []

    def start(replies: list, tls: bool = True) -> ReplayServer:
        srv = ReplayServer(replies, tls_files=(certs["server"], certs["server_key"]) if tls else None)
        servers.append(srv.start())
        return srv

    yield start
    for srv in servers:
        srv.stop()


def cert_auth(certs: dict[str, Path], port: int, ca: bool = True) -> RemotePowerShell:
    return RemotePowerShell(RemoteOptions(
        "127.0.0.1", auth="certificate", port=port, cert_pem=str(certs["client"]),
        cert_key_pem=str(certs["client_key"]), ca_bundle=str(certs["server"]) if ca else ""))


def test_a_script_runs_over_https_and_its_json_comes_back(serve, certs):
    winrm = FakeWinRM(['{"ComputerName":"HV01","VirtualHardDiskPath":"D:\\\\VHD","Switches":"External"}'])
    srv = serve([winrm])
    ps = cert_auth(certs, srv.port)
    switch = "Bob's \"lab\" switch; Remove-Item C:\\"
    assert ps.run("host_info", SwitchName=switch) == {
        "ComputerName": "HV01", "VirtualHardDiskPath": "D:\\VHD", "Switches": "External"}
    ps.close()
    verbs = [ET.fromstring(r.body).findtext("s:Header/wsa:Action", "", NS).rsplit("/", 1)[-1]
             for r in srv.requests]
    # the pool opens, the host's envelope size is asked for, the pipeline runs
    assert verbs[:5] == ["Create", "Receive", "Get", "Command", "Receive"]
    assert all(r.headers["Authorization"].endswith("/https/mutual") for r in srv.requests)
    pipeline = winrm.pipelines[0].decode("utf-8", "replace")
    # the runner gets the script file's text and the arguments as separate parameters
    for name in ("ScriptText", "Arguments", "SwitchName", "$ErrorActionPreference = 'Stop'"):
        assert name in pipeline, name
    assert switch in pipeline and switch not in script_text("host_info")


def test_a_non_terminating_error_in_the_error_stream_is_a_failure(serve, certs):
    """pypsrp 0.9.1 leaves had_errors false here: the error stream decides."""
    srv = serve([FakeWinRM(["{}"], errors=["Get-VM : Hyper-V was unable to find a virtual "
                                           "machine with name 'GMI Debian 12'."])])
    with pytest.raises(ScriptError, match=r"vm_status\.ps1 failed on 127\.0\.0\.1: Get-VM : "
                                          r"Hyper-V was unable to find a virtual machine"):
        cert_auth(certs, srv.port).run("vm_status", Name="GMI Debian 12")


def test_a_terminating_error_is_a_failure(serve, certs):
    srv = serve([FakeWinRM([], state=FAILED)])
    with pytest.raises(ScriptError, match=r"compact_disk\.ps1 failed on 127\.0\.0\.1: terminating error"):
        cert_auth(certs, srv.port).run("compact_disk", Name="GMI Debian 12")


def test_a_script_that_prints_no_json_is_a_failure(serve, certs):
    srv = serve([FakeWinRM(["Name  State", "----  -----"])])
    with pytest.raises(ScriptError, match="did not print JSON as its last line"):
        cert_auth(certs, srv.port).run("vm_status", Name="x")


def test_certificate_validation_is_on_by_default(serve, certs):
    srv = serve([(500, SOAP, b"")])
    with pytest.raises(TransportError) as err:
        cert_auth(certs, srv.port, ca=False).run("host_info")
    message = str(err.value)
    where = f"127.0.0.1 (https port {srv.port}, auth certificate)"
    assert f"cannot open PowerShell Remoting to {where}" in message
    assert "CERTIFICATE_VERIFY_FAILED" in message and "--hyperv-ca-bundle" in message
    assert srv.requests == []  # nothing was sent to an unverified host


def test_a_refused_login_names_host_and_method_never_the_password(serve):
    srv = serve([(401, {}, b"")], tls=False)
    ps = RemotePowerShell(RemoteOptions("127.0.0.1", user="CORP\\builder", password=PASSWORD,
                                        auth="ntlm", plain_http=True, port=srv.port))
    with pytest.raises(TransportError) as err:
        ps.run("host_info")
    message = str(err.value)
    assert message == (f"cannot open PowerShell Remoting to 127.0.0.1 (http port {srv.port}, "
                       "auth ntlm): the host refused the login of CORP\\builder")
    assert PASSWORD not in message and "\n" not in message
    assert srv.requests, "the server was asked"


def test_a_wsman_fault_is_one_line(serve, certs):
    fault = (f'<s:Envelope xmlns:s="{NS["s"]}"><s:Body><s:Fault><s:Code><s:Value>s:Receiver'
             "</s:Value></s:Code><s:Reason><s:Text xml:lang=\"en-US\">Access is denied.</s:Text>"
             "</s:Reason></s:Fault></s:Body></s:Envelope>").encode()
    srv = serve([(500, SOAP, fault)])
    with pytest.raises(TransportError) as err:
        cert_auth(certs, srv.port).run("host_info")
    assert "WSManFault" in str(err.value) and "\n" not in str(err.value)


def test_an_unreachable_host_is_one_line():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]  # closed again when the block ends: nothing listens
    ps = RemotePowerShell(RemoteOptions("127.0.0.1", user="u", password=PASSWORD, auth="ntlm",
                                        plain_http=True, port=port))
    with pytest.raises(TransportError, match=f"to 127.0.0.1 .http port {port}, auth ntlm.: "
                                             "ConnectionError") as err:
        ps.run("host_info")
    assert PASSWORD not in str(err.value)


def test_parameters_arrive_as_a_hashtable_and_big_numbers_survive(serve, certs):
    """pypsrp tags every int as I32: a 250 GB size must not travel as one."""
    winrm = FakeWinRM(['{"Name":"GMI Debian 12"}'])
    srv = serve([winrm])
    cert_auth(certs, srv.port).run("new_vm", Name="GMI Debian 12", SizeBytes=250 * 1024**3,
                                   MemoryMB=4096, DynamicMemory=True, Keys=[{"Kind": "key", "Value": 13}])
    pipeline = winrm.pipelines[0].decode("utf-8", "replace")
    assert "<DCT>" in pipeline  # splatted as a hashtable onto the script block
    assert '<S N="Key">SizeBytes</S><I64 N="Value">268435456000</I64>' in pipeline
    assert "I32 N=\"Value\">268435456000" not in pipeline
    assert '<S N="Key">MemoryMB</S><I32 N="Value">4096</I32>' in pipeline
    assert '<S N="Key">DynamicMemory</S><B N="Value">true</B>' in pipeline


def test_promotes_host_calls_travel_over_the_wire(serve, certs):
    """--promote's new_vm (-UseVhdx) and the upload's file_hash, with their recorded
    replies, through pypsrp's real requests (the upload: the next test)."""
    folder = "D:\\Hyper-V\\Virtual Hard Disks\\gmi-harness-RUN-main-debian-12"
    recordings = Path(__file__).parent / "hyperv_recordings"
    new_vm = (recordings / "new_vm_promote.json").read_text().strip()
    file_hash = (recordings / "file_hash_vhdx.json").read_text().strip().replace(
        "REPLACED-BY-THE-TEST", "ab" * 32)
    winrm = FakeWinRM(lambda pipeline: [file_hash if b"Get-FileHash" in pipeline else new_vm])
    srv = serve([winrm])
    ps = cert_auth(certs, srv.port)
    target = folder + "\\GMI Debian 12.vhdx"
    assert ps.run("file_hash", Path=target)["Sha256"] == "ab" * 32
    reply = ps.run("new_vm", Name="GMI Debian 12 (gmi-harness RUN main)", DiskName="GMI Debian 12",
                   Folder=folder, SwitchName="External", Version="8.0", UseVhdx=target, MemoryMB=4096,
                   DynamicMemory=True, SecureBoot=True,
                   SecureBootTemplate="MicrosoftUEFICertificateAuthority", Notes="gmi-harness run=RUN")
    ps.close()
    assert reply["State"] == "Off" and reply["BootOrder"] == ["Drive"]  # -BootOrder replaced it
    pipeline = winrm.pipelines[1].decode("utf-8", "replace")
    assert f'<S N="Key">UseVhdx</S><S N="Value">{target}</S>' in pipeline
    assert "InstallIso</S>" not in pipeline and "if ($UseVhdx) {" in pipeline  # new_vm.ps1's text


# --- uploading in chunks ---------------------------------------------------------------------


def upload_server(store: dict[str, bytes]) -> Callable[[bytes], list[str]]:
    """write_chunk.ps1 and finish_upload.ps1 on a host, the parts kept in ``store``."""
    def value(text: str, key: str) -> str:
        m = re.search(rf'<S N="Key">{key}</S><(?:S|I32|I64) N="Value">([^<]*)<', text)
        return m.group(1) if m else ""

    def reply(pipeline: bytes) -> list[str]:
        text = pipeline.decode("utf-8", "replace")
        path = value(text, "Path")
        part = path + ".part"
        if "[Convert]::FromBase64String($Data)" in text:  # write_chunk.ps1
            data = value(text, "Data")
            if not data:
                return [json.dumps({"Part": part, "Length": len(store.get(part, b""))})]
            offset = int(value(text, "Offset") or 0)
            store[part] = store.get(part, b"")[:offset] + base64.b64decode(data)
            return [json.dumps({"Part": part, "Length": len(store[part])})]
        assert "Get-FileHash -LiteralPath $part" in text  # finish_upload.ps1
        digest = hashlib.sha256(store[part]).hexdigest()
        assert digest == value(text, "Sha256")
        store[path] = store.pop(part)
        return [json.dumps({"Path": path, "Length": len(store[path]), "Sha256": digest})]
    return reply


def test_an_upload_travels_in_chunks_into_the_run_folder_and_is_checked(serve, certs, tmp_path):
    """The upload as pipelines of write_chunk.ps1 (base64 in a parameter) and one
    finish_upload.ps1, through pypsrp's real requests: no TEMP file on the host's system
    drive (pypsrp's Client.copy writes one there)."""
    from harness.backends.hyperv import transport

    store: dict[str, bytes] = {}
    winrm = FakeWinRM(upload_server(store))
    srv = serve([winrm])
    ps = cert_auth(certs, srv.port)
    local = tmp_path / "debian.iso"
    local.write_bytes(bytes(range(256)) * 40)  # 10240 bytes
    remote = "D:\\VHD\\gmi-harness-RUN-main-debian-12\\debian.iso"
    transport.upload_in_chunks(ps, local, remote, chunk=4096)
    ps.close()
    assert store == {remote: local.read_bytes()}
    names = [("write_chunk" if b"FromBase64String" in p else "finish_upload") for p in winrm.pipelines]
    assert names == ["write_chunk"] * 4 + ["finish_upload"]  # the state, 3 chunks, the check
    assert transport.UPLOAD_CHUNK == 4 << 20


# --- fetching a file in chunks -------------------------------------------------------------


def chunk_server(data: bytes) -> Callable[[bytes], list[str]]:
    """read_chunk.ps1 on a host holding ``data``: the chunk at the Offset/Count sent."""
    def reply(pipeline: bytes) -> list[str]:
        text = pipeline.decode("utf-8", "replace")
        assert "[IO.File]::Open($Path, 'Open', 'Read', 'Read')" in text  # read_chunk.ps1's text
        offset, count = (int(re.search(rf'<S N="Key">{k}</S><I(?:32|64) N="Value">(\d+)<', text)
                             .group(1)) for k in ("Offset", "Count"))  # type: ignore[union-attr]
        piece = data[offset:offset + count]
        return [json.dumps({"N": len(piece), "Data": base64.b64encode(piece).decode()})]
    return reply


def test_a_file_is_fetched_in_chunks_over_the_wire(serve, certs, tmp_path):
    data = bytes(range(256)) * 10 + b"tail"  # 2564 bytes: 2 full chunks of 1000 and a rest
    winrm = FakeWinRM(chunk_server(data))
    srv = serve([winrm])
    ps = cert_auth(certs, srv.port)
    ps.fetch_chunk = 1000
    target = tmp_path / "out" / "GMI Debian 12.vhdx"
    ps.get("D:\\VHD\\gmi\\Virtual Hard Disks\\GMI Debian 12.vhdx", target)
    assert target.read_bytes() == data
    assert not target.with_name(target.name + ".part").exists()
    offsets = [int(re.search(r'<S N="Key">Offset</S><I32 N="Value">(\d+)<',
                             p.decode("utf-8", "replace")).group(1))  # type: ignore[union-attr]
               for p in winrm.pipelines]
    assert offsets == [0, 1000, 2000, 2564]  # until a chunk of 0 bytes


class ChunkedFake(RemotePowerShell):
    """The remote transport with its script runs answered from ``data`` (no WSMan)."""

    def __init__(self, data: bytes, chunk: int, corrupt_at: int = -1) -> None:
        super().__init__(RemoteOptions("hv01", user="u"), fetch_chunk=chunk)
        self.data, self.corrupt_at = data, corrupt_at
        self.calls: list[tuple[str, dict]] = []

    def invoke(self, name: str, text: str, params: dict) -> object:
        assert text == script_text(name)
        self.calls.append((name, params))
        piece = self.data[params["Offset"]:params["Offset"] + params["Count"]]
        n = len(piece) + (1 if params["Offset"] == self.corrupt_at else 0)
        return {"N": n, "Data": base64.b64encode(piece).decode()}


def test_fetch_assembles_the_chunks_it_asked_for(tmp_path):
    data = b"0123456789" * 300 + b"x"  # 3001 bytes, chunks of 1024
    ps = ChunkedFake(data, 1024)
    ps.get("D:\\big.vhdx", tmp_path / "big.vhdx")
    assert (tmp_path / "big.vhdx").read_bytes() == data
    assert ps.calls == [("read_chunk", {"Path": "D:\\big.vhdx", "Offset": o, "Count": 1024})
                        for o in (0, 1024, 2048, 3001)]


def test_fetch_in_8_mib_chunks_by_default_and_a_bad_chunk_leaves_no_file(tmp_path):
    from harness.backends.hyperv.transport import FETCH_CHUNK

    assert FETCH_CHUNK == 8 << 20
    ps = ChunkedFake(b"a" * 3000, 1000, corrupt_at=1000)
    with pytest.raises(ScriptError, match=r"1000 bytes at offset 1000 of D:.+announced 1001"):
        ps.get("D:\\big.vhdx", tmp_path / "big.vhdx")
    assert not list(tmp_path.iterdir())  # neither the file nor its .part


# --- the session breaks: reconnect and run again, only where that is safe ----------------


def test_a_broken_session_is_reopened_and_a_safe_script_runs_again(serve, certs, caplog):
    winrm = FakeWinRM(['{"Name":"GMI Debian 12","Result":"stopped"}'], fail_commands=1)
    srv = serve([winrm])
    ps = cert_auth(certs, srv.port)
    with caplog.at_level(logging.WARNING, logger="harness.backends.hyperv.transport"):
        assert ps.run("remove_items", VmNames=["GMI Debian 12"], Tag="t") == {
            "Name": "GMI Debian 12", "Result": "stopped"}
    verbs = [ET.fromstring(r.body).findtext("s:Header/wsa:Action", "", NS).rsplit("/", 1)[-1]
             for r in srv.requests]
    assert verbs.count("Create") == 2 and len(winrm.pipelines) == 2
    assert "the session broke" in caplog.text and "running it again" in caplog.text


@pytest.mark.parametrize(("name", "params"), [
    ("new_vm", {"Name": "GMI Debian 12"}),
    ("new_clone_vm", {"Name": "gmi-clone"}),
    ("export_vm", {"Name": "GMI Debian 12"}),
    ("start_vm", {"Name": "GMI Debian 12", "Keys": [{"Kind": "key", "Value": 13}]}),
])
def test_a_script_that_must_not_run_twice_is_not_run_again(serve, certs, name, params):
    winrm = FakeWinRM(["{}"], fail_commands=1)
    srv = serve([winrm])
    ps = cert_auth(certs, srv.port)
    with pytest.raises(TransportError, match=rf"{name}\.ps1 on 127\.0\.0\.1 .+ the PowerShell "
                                             r"Remoting session broke during the call .+ not run again"):
        ps.run(name, **params)
    assert len(winrm.pipelines) == 1
    assert ps.run("vm_status", Name="x") == {}  # the next call opens a new session


def test_a_session_that_breaks_twice_fails(serve, certs):
    winrm = FakeWinRM(["{}"], fail_commands=2)
    srv = serve([winrm])
    with pytest.raises(TransportError, match="broke again after reconnecting"):
        cert_auth(certs, srv.port).run("vm_status", Name="x")
    assert len(winrm.pipelines) == 2


def test_the_rerun_list_is_explicit():
    from harness.backends.hyperv.transport import NOT_RERUNNABLE, rerunnable

    assert {"new_vm", "new_clone_vm", "export_vm"} == NOT_RERUNNABLE
    assert rerunnable("start_vm", {"Name": "x"}) and not rerunnable("start_vm", {"Keys": [1]})
    assert all(rerunnable(n, {}) for n in ("read_chunk", "remove_items", "compact_disk",
                                           "stop_vm", "vm_status", "list_leftovers"))


# --- envelope size and logging -------------------------------------------------------------


def test_the_hosts_larger_envelope_size_is_used(serve, certs):
    srv = serve([FakeWinRM(["{}"], max_envelope_kb=8192)])
    ps = cert_auth(certs, srv.port)
    ps.run("vm_status", Name="x")
    assert ps._client.wsman.max_envelope_size == 8192 * 1024


def test_an_unreadable_winrm_config_keeps_the_default_envelope(serve, certs):
    srv = serve([FakeWinRM(["{}"])])  # the Get is answered without a config
    ps = cert_auth(certs, srv.port)
    ps.run("vm_status", Name="x")
    assert ps._client.wsman.max_envelope_size == 512000  # pypsrp's, for protocol 2.2+


def test_pypsrp_debug_logging_is_off_unless_asked_for(monkeypatch):
    psrp = logging.getLogger("pypsrp")
    monkeypatch.setattr(psrp, "level", logging.NOTSET)
    RemotePowerShell(RemoteOptions("hv01", user="u"))
    assert psrp.level == logging.INFO
    monkeypatch.setattr(psrp, "level", logging.DEBUG)  # a person who wants it keeps it
    RemotePowerShell(RemoteOptions("hv01", user="u"))
    assert psrp.level == logging.DEBUG
