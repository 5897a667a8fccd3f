"""`ray up` with the project's ray-cluster.yaml, for real, over loopback SSH.

Named to run first: `ray down` ends with a bare `ray stop`, which stops every Ray process on the
machine, so it must run before the suite starts its own Ray. sshd runs per connection in inetd
mode (`sshd -i`, Ray's ssh_proxy_command) with a throwaway key and config, so nothing listens.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import httpx
import psutil
import pytest
import yaml

from storage.embedded_mongod import free_port
from tests.images import encoded, photo
from tests.waiting import wait_until_served

pytestmark = pytest.mark.slow
ROOT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
HOME = Path.home()
SSHD = shutil.which("sshd") or "/usr/sbin/sshd"


def ray_processes() -> list[str]:
    found = []
    for proc in psutil.process_iter(["cmdline"]):
        cmdline = " ".join(proc.info["cmdline"] or [])
        if any(name in cmdline for name in ("raylet", "gcs_server", "ray/dashboard", "monitor.py")):
            found.append(cmdline[:120])
    return found


@pytest.fixture
def loopback_ssh(tmp_path: Path):
    if not Path(SSHD).exists():
        pytest.skip("openssh-server is not installed (.ci/run installs it)")
    if ray_processes():
        pytest.skip("Ray is already running here; `ray down` would stop it (run this test first)")
    key = tmp_path / "id_ed25519"
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(key)], check=True)
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(tmp_path / "host_key")], check=True)
    (tmp_path / "authorized_keys").write_text((tmp_path / "id_ed25519.pub").read_text())
    config = tmp_path / "sshd_config"
    config.write_text(f"HostKey {tmp_path}/host_key\nAuthorizedKeysFile {tmp_path}/authorized_keys\n"
                      "PermitRootLogin yes\nStrictModes no\nUsePAM no\nPasswordAuthentication no\n"
                      "PubkeyAuthentication yes\n")
    Path("/run/sshd").mkdir(exist_ok=True)  # sshd's privilege-separation directory
    backups = {name: (HOME / name).read_bytes() if (HOME / name).exists() else None
               for name in (".profile", ".bashrc")}
    yield key, f"{SSHD} -i -f {config}"
    for name, content in backups.items():  # the setup commands edit the login PATH; put it back
        if content is None:
            (HOME / name).unlink(missing_ok=True)
        else:
            (HOME / name).write_bytes(content)
    for path in ("prog-image", "prog-image-venv", "ray_bootstrap_config.yaml", "ray_bootstrap_key.pem"):
        target = HOME / path
        if target.is_symlink() or target.is_file():
            target.unlink()
        elif target.is_dir():
            shutil.rmtree(target)


def test_ray_up_serve_deploy_and_ray_down(loopback_ssh, mongo_url, tmp_path):
    key, proxy = loopback_ssh
    gcs_port, http_port = free_port(), free_port()
    cluster = yaml.safe_load((ROOT / "ray-cluster.yaml").read_text())
    cluster["cluster_name"] = f"prog-image-test-{os.getpid()}"
    cluster["provider"] = {"type": "local", "head_ip": "127.0.0.1", "worker_ips": []}
    cluster["auth"] = {"ssh_user": "root", "ssh_private_key": str(key), "ssh_proxy_command": proxy}
    cluster["max_workers"] = 0
    cluster["file_mounts"]["~/prog-image"] = str(ROOT)
    # The real setup commands, except that the venv is this one instead of a fresh 540 MB install.
    assert "pip install" in cluster["setup_commands"][0]
    cluster["setup_commands"][0] = f"ln -sfn {BIN.parent} ~/prog-image-venv"
    cluster["head_start_ray_commands"] = [
        command.replace("mongodb://10.0.0.10:27017/", mongo_url).replace("--port=6379", f"--port={gcs_port}")
        .replace("--head", "--head --node-ip-address=127.0.0.1")
        for command in cluster["head_start_ray_commands"]]
    config = tmp_path / "ray-cluster.yaml"
    config.write_text(yaml.safe_dump(cluster))
    serve_config = yaml.safe_load((ROOT / "deployments/serve_config.yaml").read_text())
    serve_config["http_options"]["port"] = http_port
    serve_config["applications"][0]["args"].update(amqp_url="", mongo_db="prog_image_ray_up")
    (tmp_path / "serve_config.yaml").write_text(yaml.safe_dump(serve_config))

    env = {**os.environ, "RAY_USAGE_STATS_ENABLED": "0"}
    ray = str(BIN / "ray")

    def run(*args: str, timeout: float = 300) -> str:
        out = subprocess.run(args, capture_output=True, text=True, env=env, timeout=timeout)
        assert out.returncode == 0, f"{args}: {out.stdout[-3000:]}\n{out.stderr[-3000:]}"
        return out.stdout

    run(ray, "get-auth-token", "--generate")  # the documented first step; keeps a token that exists
    try:
        run(ray, "up", "-y", "--no-config-cache", str(config))
        # The documented deploy command, run on the head through the cluster's own SSH.
        run(ray, "exec", str(config),
            f"RAY_AUTH_MODE=token ~/prog-image-venv/bin/serve deploy {tmp_path}/serve_config.yaml")
        base = f"http://127.0.0.1:{http_port}"
        wait_until_served(base, timeout_s=180)
        data = encoded(photo(120, 90, seed=1500), "PNG")
        upload = httpx.post(f"{base}/upload_file", files={"image": ("u.png", data)}, timeout=60)
        assert upload.status_code == 201, upload.text
        mirrored = httpx.get(f"{base}/{upload.json()['image_id']}/mirror", timeout=60)
        assert mirrored.status_code == 200 and mirrored.headers["content-type"] == "image/png"
    finally:
        run(ray, "down", "-y", str(config))
    deadline = time.monotonic() + 30
    while ray_processes() and time.monotonic() < deadline:
        time.sleep(1)
    assert ray_processes() == [], "ray down left Ray running"
    # `ray stop` does not know Serve's HAProxy: stop an orphan so the suite's own Ray can start its own.
    from deployments.services import stop_orphaned_haproxy

    stop_orphaned_haproxy()
