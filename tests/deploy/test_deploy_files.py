"""Static checks of what users run without a container engine here: docker-compose.yml against
the Compose Specification schema, the shared configs against the real binaries, the scripts'
syntax."""
import json
import os
import subprocess
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
            if "dsn-password-file" in agent:
                local = agent["dsn-password-file"].replace("/etc/txcoord", "deploy/config")
                self.assertTrue(os.path.exists(os.path.join(ROOT, local)), local)


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

    def test_scripts_parse(self):
        for script in ("deploy/local-cluster.sh", "deploy/install-deps.sh", "deploy/run-tests.sh",
                       ".ci/run"):
            r = subprocess.run(["bash", "-n", os.path.join(ROOT, script)], capture_output=True,
                               text=True)
            self.assertEqual(r.returncode, 0, f"{script}: {r.stderr}")


if __name__ == "__main__":
    unittest.main()
