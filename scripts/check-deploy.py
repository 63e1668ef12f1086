#!/usr/bin/env python3
"""Checks the deployment files no test can run here (no container engine): docker-compose.yml
and deploy/docker-compose.ha.yml parse and point at files that exist (the HA file: PostgreSQL,
NATS with JetStream, replicas on the same two URLs, a proxy listing them all), the Dockerfile is multi-stage with a non-root user and a
health check on /healthz, and the systemd unit `install-service` writes passes systemd-analyze
(when systemd-analyze is installed). Exits non-zero with one line per problem."""

import json
import os
import re
import shlex
import subprocess
import sys
import tempfile

import yaml

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
problems = []


def check(condition, message):
    if not condition:
        problems.append(message)


def exists(path):
    return os.path.exists(os.path.join(ROOT, path))


# docker-compose.yml
with open(os.path.join(ROOT, "docker-compose.yml"), encoding="utf-8") as f:
    compose = yaml.safe_load(f)
services = compose.get("services", {})
check("hq" in services, "docker-compose.yml: no 'hq' service")
declared_volumes = set((compose.get("volumes") or {}).keys())
for name, service in services.items():
    build = service.get("build")
    if build is not None:
        context = build if isinstance(build, str) else build.get("context", ".")
        dockerfile = "Dockerfile" if isinstance(build, str) else build.get("dockerfile", "Dockerfile")
        check(exists(os.path.join(context, dockerfile)), f"{name}: build file {context}/{dockerfile} is missing")
    for env_file in service.get("env_file", []):
        path = env_file if isinstance(env_file, str) else env_file["path"]
        # The real file holds secrets and is not committed; its example must be.
        check(exists(path) or exists(path + ".example"), f"{name}: env_file {path} (or {path}.example) is missing")
    for volume in service.get("volumes", []):
        source = volume.split(":")[0] if isinstance(volume, str) else volume.get("source")
        if source and not source.startswith((".", "/")):
            check(source in declared_volumes, f"{name}: volume '{source}' is not declared")
        elif source:
            check(exists(source), f"{name}: bind mount {source} is missing")
    for dependency in service.get("depends_on", {}) or {}:
        check(dependency in services, f"{name}: depends on unknown service '{dependency}'")
check("runner" in services and "runner" in services["runner"].get("profiles", []),
      "docker-compose.yml: the runner service must sit under the 'runner' profile")
hq_env = services.get("hq", {}).get("env_file", [])
runner_env = services.get("runner", {}).get("env_file", [])
check(not set(map(str, hq_env)) & set(map(str, runner_env)),
      "docker-compose.yml: the runner must not share HQ's env file (it holds the admin token)")

# deploy/docker-compose.ha.yml: PostgreSQL, NATS with JetStream, two or more replicas on the same
# two URLs, and a proxy whose configuration lists every replica. Paths are the file's own.
HA = os.path.join("deploy", "docker-compose.ha.yml")
with open(os.path.join(ROOT, HA), encoding="utf-8") as f:
    ha = yaml.safe_load(f)
ha_services = ha.get("services", {})
ha_volumes = set((ha.get("volumes") or {}).keys())
replicas = {name: s for name, s in ha_services.items() if (s.get("environment") or {}).get("AGENTRELAY_REPLICA_NAME")}
check(len(replicas) >= 2, f"{HA}: {len(replicas)} HQ replicas; expected two or more")
for name, service in ha_services.items():
    build = service.get("build")
    if build is not None:
        context = build if isinstance(build, str) else build.get("context", ".")
        check(exists(os.path.join("deploy", context, "Dockerfile")), f"{HA}: {name} builds from no Dockerfile")
    for env_file in service.get("env_file", []):
        path = os.path.join("deploy", env_file if isinstance(env_file, str) else env_file["path"])
        check(exists(path) or exists(path + ".example"), f"{HA}: {name}: env_file {path} (or its example) is missing")
    for volume in service.get("volumes", []):
        source = volume.split(":")[0]
        if source.startswith((".", "/")):
            check(exists(os.path.join("deploy", source)), f"{HA}: {name}: bind mount {source} is missing")
        else:
            check(source in ha_volumes, f"{HA}: {name}: volume '{source}' is not declared")
    for dependency in service.get("depends_on", {}) or {}:
        check(dependency in ha_services, f"{HA}: {name} depends on unknown service '{dependency}'")
urls = {(s["environment"].get("AGENTRELAY_DATABASE_URL"), s["environment"].get("AGENTRELAY_NATS_URL"))
        for s in replicas.values()}
check(len(urls) == 1 and all(all(u) for u in urls), f"{HA}: every replica needs the same database and NATS URLs")
names = [s["environment"]["AGENTRELAY_REPLICA_NAME"] for s in replicas.values()]
check(len(set(names)) == len(names), f"{HA}: replica names repeat")
check(any(u[0].startswith("postgres://") and "@postgres/" in u[0] for u in urls), f"{HA}: the replicas must use the postgres service")
check(any("postgres" in (s.get("image") or "") for s in ha_services.values()), f"{HA}: no PostgreSQL service")
nats = [s for s in ha_services.values() if "nats" in (s.get("image") or "")]
check(nats and "-js" in (nats[0].get("command") or []), f"{HA}: NATS must run with JetStream (-js)")
proxies = [s for s in ha_services.values() if "nginx" in (s.get("image") or "")]
check(len(proxies) == 1, f"{HA}: expected one nginx proxy")
if proxies:
    mount = next((v.split(":")[0] for v in proxies[0].get("volumes", []) if v.endswith(".conf:ro") or ".conf:" in v), None)
    check(mount is not None, f"{HA}: the proxy mounts no configuration")
    if mount and exists(os.path.join("deploy", mount)):
        with open(os.path.join(ROOT, "deploy", mount), encoding="utf-8") as f:
            conf = f.read()
        for name in replicas:
            check(f"server {name}:8080" in conf, f"{mount}: the upstream does not list {name}")
        check("Upgrade $http_upgrade" in conf and "proxy_buffering off" in conf,
              f"{mount}: WebSocket upgrades and unbuffered events must pass")

# Dockerfile
with open(os.path.join(ROOT, "Dockerfile"), encoding="utf-8") as f:
    dockerfile = f.read()
instructions = [line.strip() for line in re.sub(r"\\\n", " ", dockerfile).splitlines()
                if line.strip() and not line.strip().startswith("#")]
stages = [re.match(r"FROM\s+\S+\s+AS\s+(\S+)", i, re.I) for i in instructions if i.upper().startswith("FROM ")]
stage_names = [m.group(1) for m in stages if m]
check(len(stages) >= 3, f"Dockerfile: {len(stages)} stages; expected web, build and runtime")
for instruction in instructions:
    if instruction.upper().startswith("COPY "):
        words = shlex.split(instruction)[1:]
        from_stage = next((w.split("=", 1)[1] for w in words if w.startswith("--from=")), None)
        sources = [w for w in words if not w.startswith("--")][:-1]
        if from_stage:
            check(from_stage in stage_names, f"Dockerfile: COPY --from={from_stage} names no stage")
        else:
            for source in sources:
                check(exists(source), f"Dockerfile: COPY source {source} is missing")
users = [i.split()[1] for i in instructions if i.upper().startswith("USER ")]
check(users and users[-1] not in ("root", "0"), "Dockerfile: the runtime must run as a non-root USER")
check(any(i.upper().startswith("HEALTHCHECK") and "/healthz" in i for i in instructions),
      "Dockerfile: no HEALTHCHECK on /healthz")
check(exists(".dockerignore"), ".dockerignore is missing")


def bin_dir():
    """The debug binaries: AGENTRELAY_BIN_DIR (set by make), else where cargo puts them."""
    if os.environ.get("AGENTRELAY_BIN_DIR"):
        return os.environ["AGENTRELAY_BIN_DIR"]
    try:
        metadata = subprocess.run(["cargo", "metadata", "--no-deps", "--format-version", "1"], cwd=ROOT,
                                  check=True, capture_output=True, text=True).stdout
        target = json.loads(metadata)["target_directory"]
    except (OSError, subprocess.CalledProcessError, ValueError, KeyError):
        target = os.path.join(ROOT, os.environ.get("CARGO_TARGET_DIR", "target"))
    return os.path.join(target, "debug")


# The systemd unit, as install-service writes it.
runner = os.path.join(bin_dir(), "agentrelay-runner")
if os.path.exists(runner):
    with tempfile.TemporaryDirectory() as out:
        subprocess.run([runner, "--hq", "https://hq.example.com", "--token", "arl_run_deploycheck", "--state-dir",
                        os.path.join(out, "state"), "install-service", "--output", out, "--run-as", "root"],
                       check=True, stdout=subprocess.DEVNULL)
        unit = os.path.join(out, "agentrelay-runner.service")
        with open(unit, encoding="utf-8") as f:
            text = f.read()
            check("arl_run_deploycheck" not in text, "install-service put the token in the unit")
            # Sessions outlive `systemctl restart` only if systemd signals the runner alone.
            kill_modes = [line.split("=", 1)[1].strip() for line in text.splitlines() if line.startswith("KillMode=")]
            check(kill_modes == ["process"], f"the runner unit must say KillMode=process, not {kill_modes}")
        analyze = subprocess.run(["systemd-analyze", "verify", unit], capture_output=True, text=True) \
            if subprocess.run(["sh", "-c", "command -v systemd-analyze"], capture_output=True).returncode == 0 else None
        if analyze is not None:
            check(analyze.returncode == 0, f"systemd-analyze verify: {analyze.stderr.strip()}")
else:
    problems.append(f"{runner} is missing: run `cargo build --bins` first")

for problem in problems:
    print(f"check-deploy: {problem}", file=sys.stderr)
if problems:
    sys.exit(1)
print("check-deploy: docker-compose.yml, deploy/docker-compose.ha.yml, Dockerfile and the systemd unit look right")
