"""Static checks of what users run without a container engine here: docker-compose.yml against
the Compose Specification schema, the shared configs against the real binaries, the scripts'
syntax."""
import json
import os
import shutil
import stat
import subprocess
import tempfile
import unittest

import jsonschema
import yaml

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
BUILD = os.environ.get("TXCOORD_BUILD_DIR", os.path.join(ROOT, "build"))
SCHEMA = os.path.join(ROOT, "..", "shared", "data", "compose-spec.json")


def load(path):
    with open(os.path.join(ROOT, path)) as f:
        return yaml.safe_load(f)


class ComposeFile(unittest.TestCase):
    def setUp(self):
        self.compose = load("docker-compose.yml")

    @unittest.skipUnless(os.path.exists(SCHEMA), "shared/data/compose-spec.json not beside the checkout")
    def test_validates_against_compose_spec(self):
        with open(SCHEMA) as f:
            schema = json.load(f)
        jsonschema.Draft7Validator(schema).validate(self.compose)

    def test_topology(self):
        services = self.compose["services"]
        for name in ("postgres-orders", "postgres-inventory", "mysql", "mongo", "coordinator",
                     "agent-orders", "agent-inventory", "agent-ledger", "agent-catalog"):
            self.assertIn(name, services)
        for pg in ("postgres-orders", "postgres-inventory"):
            self.assertIn("max_prepared_transactions=100", " ".join(services[pg]["command"]))
        self.assertIn("--replSet", services["mongo"]["command"])
        self.assertTrue(any(v.endswith(":/var/lib/txcoord")
                            for v in services["coordinator"]["volumes"]))

    def test_referenced_files_exist(self):
        for name, svc in self.compose["services"].items():
            for v in svc.get("volumes", []):
                src = v.split(":")[0]
                if src.startswith("./"):
                    self.assertTrue(os.path.exists(os.path.join(ROOT, src)), f"{name}: {src}")
            build = svc.get("build")
            if build:
                self.assertTrue(os.path.exists(os.path.join(ROOT, build["dockerfile"])))

    def test_coordinator_participants_match_agents(self):
        coord = load("deploy/config/txcoord.yaml")
        for spec in coord["participant"]:
            name, address = spec.split("=")
            host = address.split(":")[0]
            self.assertIn(host, self.compose["services"], spec)
            agent = load(f"deploy/config/agent-{name}.yaml")
            self.assertEqual(agent["name"], name)
            self.assertEqual(agent["coordinator"].split(":")[0], "coordinator")
            dsn = agent["dsn"]
            db_host = (dsn.split("//")[1].split(":")[0].split("/")[0] if "://" in dsn
                       else dsn.split("host=")[1].split()[0])
            self.assertIn(db_host, self.compose["services"])
            for key in ("dsn-password-file", "coordinator-token-file", "tls-cert", "tls-key",
                        "tls-ca"):
                if key in agent:
                    self.assertSecretMounted(agent[key], f"agent-{name}")
            self.assertIn("tls-cert", agent, name)
        for key in ("token-file", "tls-cert", "tls-key", "tls-ca"):
            self.assertSecretMounted(coord[key], "coordinator")

    def assertSecretMounted(self, path, service):
        """`path` is a Compose secret given to `service`, from a file deploy/make-secrets.sh
        makes."""
        self.assertTrue(path.startswith("/run/secrets/"), path)
        target = path[len("/run/secrets/"):]
        by_target = {}
        for entry in self.compose["services"][service].get("secrets", []):
            if isinstance(entry, str):
                by_target[entry] = entry
            else:
                by_target[entry.get("target", entry["source"])] = entry["source"]
        self.assertIn(target, by_target, f"{service} has no secret {target}")
        source = self.compose["secrets"][by_target[target]]["file"]
        self.assertTrue(source.startswith("./deploy/secrets/"), source)
        with open(os.path.join(ROOT, "deploy/make-secrets.sh")) as f:
            script = f.read().replace("${scope}_token", "agent_token")
        name = os.path.basename(source)
        if source.startswith("./deploy/secrets/certs/"):
            stem = name.split(".")[0]
            self.assertIn(stem if stem != "ca" else "make-certs.sh", script, source)
        else:
            self.assertIn(name, script, source)

    def test_no_secret_is_committed_and_the_coordinator_is_on_loopback(self):
        tracked = subprocess.run(["git", "ls-files"], cwd=ROOT, capture_output=True, text=True)
        if tracked.returncode == 0:
            for path in tracked.stdout.split():
                self.assertFalse(path.startswith("deploy/secrets/"), path)
                self.assertNotIn("password", os.path.basename(path), path)
        mysql_env = self.compose["services"]["mysql"]["environment"]
        self.assertNotIn("MARIADB_PASSWORD", mysql_env)
        self.assertEqual(mysql_env["MARIADB_PASSWORD_FILE"], "/run/secrets/ledger_password")
        for port in self.compose["services"]["coordinator"]["ports"]:
            self.assertTrue(str(port).startswith("127.0.0.1:"), port)
        for name, svc in self.compose["services"].items():
            if name != "coordinator":
                self.assertNotIn("ports", svc, f"{name} is published")

    def test_make_secrets_makes_private_files_once(self):
        with tempfile.TemporaryDirectory() as tmp:
            script = os.path.join(tmp, "make-secrets.sh")
            shutil.copy(os.path.join(ROOT, "deploy/make-secrets.sh"), script)
            shutil.copy(os.path.join(ROOT, "deploy/make-certs.sh"), tmp)
            subprocess.run(["bash", script], check=True, capture_output=True)
            secrets = os.path.join(tmp, "secrets")
            names = sorted(os.listdir(secrets))
            self.assertEqual(names, ["admin_token", "agent_token", "certs", "client_token",
                                     "ledger_password", "txcoord_tokens"])
            certs = os.path.join(secrets, "certs")
            for n in ("coordinator", "orders", "inventory", "ledger", "catalog", "client",
                      "admin"):
                self.assertTrue(os.path.exists(os.path.join(certs, f"{n}.pem")), n)
                self.assertEqual(stat.S_IMODE(os.stat(os.path.join(certs, f"{n}.key")).st_mode),
                                 0o600, n)
            before = {}
            names.remove("certs")
            for n in names:
                path = os.path.join(secrets, n)
                self.assertEqual(stat.S_IMODE(os.stat(path).st_mode), 0o600, n)
                with open(path) as f:
                    before[n] = f.read()
            lines = [line.split() for line in before["txcoord_tokens"].splitlines()
                     if not line.startswith("#")]
            self.assertEqual([fields[0] for fields in lines], ["client", "admin", "agent"])
            self.assertEqual(lines[2][1], before["agent_token"].strip())
            self.assertGreaterEqual(min(len(fields[1]) for fields in lines), 16)
            subprocess.run(["bash", script], check=True, capture_output=True)
            for n in names:
                with open(os.path.join(secrets, n)) as f:
                    self.assertEqual(f.read(), before[n], f"{n} changed on a second run")


class ConfigsAndScripts(unittest.TestCase):
    def run_bin(self, *argv):
        return subprocess.run([os.path.join(BUILD, "bin", argv[0]), *argv[1:]],
                              capture_output=True, text=True, timeout=30)

    def test_binaries_accept_the_shared_configs(self):
        r = self.run_bin("txcoord", "--config", os.path.join(ROOT, "deploy/config/txcoord.yaml"),
                         "--help")
        self.assertEqual(r.returncode, 0, r.stderr)
        for name in ("orders", "inventory", "ledger", "catalog"):
            r = self.run_bin("txagent", "--config",
                             os.path.join(ROOT, f"deploy/config/agent-{name}.yaml"), "--help")
            self.assertEqual(r.returncode, 0, r.stderr)

    def test_bad_flags_and_configs_exit_non_zero_with_one_line(self):
        r = self.run_bin("txcoord", "--no-such-flag")
        self.assertEqual(r.returncode, 2)
        self.assertEqual(r.stderr.strip().count("\n"), 0, r.stderr)
        self.assertIn("--no-such-flag", r.stderr)
        r = self.run_bin("txcoord", "--data-dir", "/tmp/x", "--participant", "nonsense")
        self.assertEqual(r.returncode, 2)
        self.assertIn("NAME=HOST:PORT", r.stderr)
        r = self.run_bin("txagent", "--name", "a", "--coordinator", "x:1", "--backend", "oracle")
        self.assertEqual(r.returncode, 2)
        self.assertIn("--backend", r.stderr)
        r = self.run_bin("txcoord", "--config", "/nonexistent.yaml")
        self.assertEqual(r.returncode, 2)
        self.assertIn("/nonexistent.yaml", r.stderr)

    def test_systemd_units_are_hardened_and_verify(self):
        units = {"txcoord.service": "txcoord", "txagent@.service": "txagent"}
        for unit in units:
            with open(os.path.join(ROOT, "deploy/systemd", unit)) as f:
                text = f.read()
            for directive in ("DynamicUser=yes", "NoNewPrivileges=yes", "ProtectSystem=strict",
                              "ProtectHome=yes", "PrivateTmp=yes", "CapabilityBoundingSet=\n",
                              "LoadCredential=tls_key:", "--tls-key ${CREDENTIALS_DIRECTORY}"):
                self.assertIn(directive, text, f"{unit}: {directive}")
            if unit == "txcoord.service":
                self.assertIn("StateDirectory=txcoord", text)
                self.assertIn("--data-dir ${STATE_DIRECTORY}", text)
        analyze = shutil.which("systemd-analyze")
        if analyze is None:
            self.skipTest("systemd-analyze is not installed")
        with tempfile.TemporaryDirectory() as tmp:
            paths = []
            for unit, binary in units.items():
                with open(os.path.join(ROOT, "deploy/systemd", unit)) as f:
                    text = f.read().replace(f"/usr/local/bin/{binary}",
                                            os.path.join(BUILD, "bin", binary))
                name = unit.replace("@.", "@orders.")
                with open(os.path.join(tmp, name), "w") as f:
                    f.write(text)
                paths.append(os.path.join(tmp, name))
            r = subprocess.run([analyze, "verify", *paths], capture_output=True, text=True,
                               timeout=60)
            self.assertEqual(r.returncode, 0, r.stderr)
            mine = [line for line in r.stderr.splitlines() if tmp in line]
            self.assertEqual(mine, [], r.stderr)

    def test_scripts_parse(self):
        for script in ("deploy/local-cluster.sh", "deploy/install-deps.sh", "deploy/run-tests.sh",
                       "deploy/make-secrets.sh", "deploy/make-certs.sh", ".ci/run"):
            r = subprocess.run(["bash", "-n", os.path.join(ROOT, script)], capture_output=True,
                               text=True)
            self.assertEqual(r.returncode, 0, f"{script}: {r.stderr}")



class SourceLayering(unittest.TestCase):
    """What each part of the source may include: the shared protocol code and common/ depend on
    neither side, and the agent depends on no coordinator code."""

    RULES = {
        "protocol": ("coordinator/", "participant-agent/", "common/"),
        "common": ("coordinator/", "participant-agent/", "protocol/"),
        "participant-agent": ("coordinator/",),
    }

    def test_no_part_includes_what_it_must_not(self):
        wrong = []
        for part, forbidden in self.RULES.items():
            for folder, _, files in os.walk(os.path.join(ROOT, part)):
                for name in files:
                    if not name.endswith((".h", ".cc")):
                        continue
                    path = os.path.join(folder, name)
                    with open(path) as f:
                        for n, line in enumerate(f, 1):
                            if line.startswith("#include \"") and any(
                                    line[len("#include \""):].startswith(x) for x in forbidden):
                                wrong.append(f"{os.path.relpath(path, ROOT)}:{n}: {line.strip()}")
        self.assertEqual(wrong, [])

if __name__ == "__main__":
    unittest.main()
