# SPDX-License-Identifier: Apache-2.0
"""What the benchmark scripts share: the nginx that answers 204 (the HTTP ceiling and the
dispatcher's sink) and a process's CPU time. Standard library only."""
import os
import socket
import subprocess
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "integration"))
from evd_harness import free_port, wait_for  # noqa: E402


def start_nginx(tmp):
    """nginx on a free loopback port answering 204 to everything, keep-alive without a practical
    limit; returns (process, port)."""
    port = free_port()
    conf = os.path.join(tmp, "nginx.conf")
    with open(conf, "w") as f:
        f.write(f"""worker_processes 1;
error_log {tmp}/nginx-error.log;
pid {tmp}/nginx.pid;
events {{ worker_connections 4096; }}
http {{
  access_log off;
  client_body_temp_path {tmp};
  client_body_buffer_size 64k;
  keepalive_requests 10000000;
  keepalive_timeout 300s;
  server {{ listen 127.0.0.1:{port} backlog=4096; location / {{ return 204; }} }}
}}
""")
    proc = subprocess.Popen(["nginx", "-c", conf, "-p", tmp, "-g", "daemon off;"], stderr=subprocess.DEVNULL)
    wait_for(lambda: socket.create_connection(("127.0.0.1", port), 0.2).close() or True, what="nginx")
    return proc, port


def cpu_seconds(pid):
    """utime + stime of a process (all threads), in seconds."""
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
