"""Values and helpers shared by e2e.py and engines.py (the boot test)."""

from __future__ import annotations

RUNNER_TOKEN = "glrt-e2e'run\"ner$(reboot)`id`\\;&|-0123456789"
PASSWORD_HASH = "$6$pinodesalt$ZU8tXiuiLl3v.QDIcku9Zu6nG5xxmDLRrN6L7M4O8o2LLDmkJTF0ExUBxp3TkOiD6Kh21B4pR8moDI..taezW1"


def parse_record(text: str) -> dict:
    return dict(line.split("=", 1) for line in text.strip().splitlines() if "=" in line)


# The other CI systems' secrets (issue 19): quotes and shell syntax where the form allows them,
# so that a secret pasted into shell or YAML unquoted would show.
JENKINS_PASSWORD = "e2e-jenkins'pass\"word$(reboot)`id`;-0123"
FORGEJO_TOKEN = "e2e0forgejo0registration0token0123456789"
GITHUB_TOKEN = "github_pat_e2e0token0for0pinode0boot0test0123456789"
GITHUB_APP_ID = 123456
GITHUB_INSTALLATION_ID = 7890123
GITHUB_APP_KEY = (
    "-----BEGIN RSA PRIVATE KEY-----\n"
    "MIIEpQIBAAKCAQEAe2eKeyBytesForPinodeBootTestOnly0123456789abcdefABCD\n"
    "ZmFrZSBrZXkgbWF0ZXJpYWwgZm9yIHRoZSBwaW5vZGUgYm9vdCB0ZXN0IG9ubHkK\n"
    "-----END RSA PRIVATE KEY-----\n"
)
# A slice of the key's body, searched for on the FAT.
GITHUB_APP_KEY_SLICE = b"MIIEpQIBAAKCAQEAe2eKeyBytesForPinodeBootTestOnly"

CI_ENV = {"E2E_JENKINS_PASSWORD": JENKINS_PASSWORD, "E2E_FORGEJO_TOKEN": FORGEJO_TOKEN,
          "E2E_GITHUB_TOKEN": GITHUB_TOKEN}


def ci_runners(key_dir, kinds: list[str], github_app: bool) -> list[dict]:
    """Runner mappings for `kinds` (gitlab, jenkins, github, forgejo); the GitHub App's key is
    written to key_dir, else GitHub authenticates with a token."""
    runners = []
    for kind in kinds:
        if kind == "gitlab":
            runners.append({"kind": "gitlab", "url": "https://gitlab.example.com", "token_env": "E2E_RUNNER_TOKEN",
                            "concurrent": 3, "default_image": "alpine:3.20"})
        elif kind == "jenkins":
            runners.append({"kind": "jenkins", "admin_password_env": "E2E_JENKINS_PASSWORD"})
        elif kind == "github" and github_app:
            key = key_dir / "github-app.pem"
            key.write_text(GITHUB_APP_KEY)
            key.chmod(0o600)
            runners.append({"kind": "github", "url": "https://github.com/pinode-e2e", "app_id": GITHUB_APP_ID,
                            "installation_id": GITHUB_INSTALLATION_ID, "private_key_file": str(key)})
        elif kind == "github":
            runners.append({"kind": "github", "url": "https://github.com/pinode-e2e/app",
                            "token_env": "E2E_GITHUB_TOKEN", "name": "e2e-arm64"})
        elif kind == "forgejo":
            runners.append({"kind": "forgejo", "url": "https://forgejo.example.com", "token_env": "E2E_FORGEJO_TOKEN",
                            "builds": "dind", "privileged": True})
    return runners


def ci_manifests(kinds: list[str]) -> set[str]:
    """The files each runner places in the manifests directory the distribution applies."""
    files = {
        "gitlab": {"pinode-gitlab-runner.yaml", "pinode-gitlab-runner-token.yaml"},
        "jenkins": {"pinode-jenkins.yaml", "pinode-jenkins-admin.yaml"},
        "github": {"pinode-github-arc.yaml", "pinode-github-secret.yaml"},
        "forgejo": {"pinode-forgejo-runner.yaml", "pinode-forgejo-runner-token.yaml"},
    }
    return set().union(*(files[k] for k in kinds))


def ci_secrets(kinds: list[str], github_app: bool) -> dict[str, dict[str, bytes]]:
    """Secret file -> (Secret name/key -> the bytes its data must decode to)."""
    want = {
        "gitlab": ("pinode-gitlab-runner-token.yaml", {"gitlab-runner-token/runner-token": RUNNER_TOKEN.encode()}),
        "jenkins": ("pinode-jenkins-admin.yaml", {"jenkins-admin/jenkins-admin-user": b"admin",
                                                  "jenkins-admin/jenkins-admin-password": JENKINS_PASSWORD.encode()}),
        "github": ("pinode-github-secret.yaml",
                   {"pinode-github/github_app_id": str(GITHUB_APP_ID).encode(),
                    "pinode-github/github_app_installation_id": str(GITHUB_INSTALLATION_ID).encode(),
                    # A secret file is read without its final line break.
                    "pinode-github/github_app_private_key": GITHUB_APP_KEY.rstrip("\n").encode()}
                   if github_app else {"pinode-github/github_token": GITHUB_TOKEN.encode()}),
        "forgejo": ("pinode-forgejo-runner-token.yaml", {"forgejo-runner-token/token": FORGEJO_TOKEN.encode()}),
    }
    return dict(want[k] for k in kinds)


def ci_fat_secrets(kinds: list[str], github_app: bool) -> dict[str, bytes]:
    """The runners' secrets searched for, byte for byte, on the raw FAT partition."""
    found = {}
    if "jenkins" in kinds:
        found["Jenkins admin password"] = JENKINS_PASSWORD.encode()
    if "github" in kinds:
        found["GitHub credential"] = GITHUB_APP_KEY_SLICE if github_app else GITHUB_TOKEN.encode()
    if "forgejo" in kinds:
        found["Forgejo registration token"] = FORGEJO_TOKEN.encode()
    return found


def check_ci_on_node(node, manifests_dir: str, kinds: list[str], github_app: bool, others: set[str]) -> None:
    """Over SSH: exactly the runners' manifests (and `others`) in the directory, each Secret's
    data byte-exact, every file root-only."""
    import base64
    import yaml
    r = node.sh(f"sudo -n ls {manifests_dir} 2>/dev/null")
    found = set(r.stdout.split())
    want = ci_manifests(kinds) | others
    node.check(f"exactly the runners' manifests in {manifests_dir} ({', '.join(kinds)})", found == want,
               f"found {sorted(found)}, want {sorted(want)}")
    # Listed by name: the directory may be root-only, so no glob in the user's shell.
    names = " ".join(f"{manifests_dir}/{f}" for f in sorted(ci_manifests(kinds)))
    r = node.sh(f"sudo -n stat -c '%a %n' {names}")
    modes = [line.split(" ", 1)[0] for line in r.stdout.splitlines()]
    node.check("the runners' manifests are root-only (600)",
               len(modes) == len(ci_manifests(kinds)) and all(m == "600" for m in modes), r.stdout + r.stderr)
    for file, keys in ci_secrets(kinds, github_app).items():
        r = node.sh(f"sudo -n cat {manifests_dir}/{file}")
        try:
            docs = [d for d in yaml.safe_load_all(r.stdout) if isinstance(d, dict)]
        except yaml.YAMLError as e:
            docs = []
            r.stdout += f"\n(YAML error: {e})"
        data = {f"{d['metadata']['name']}/{k}": base64.b64decode(v)
                for d in docs if d.get("kind") == "Secret" for k, v in (d.get("data") or {}).items() if v}
        for key, value in keys.items():
            node.check(f"Secret {key} byte-exact (written on the node from its root-only copy)",
                       data.get(key) == value, f"{file}: keys {sorted(data)}")
    # No manifest that is not a Secret carries any of the secrets.
    secrets = [v for keys in ci_secrets(kinds, github_app).values() for v in keys.values() if len(v) > 8]
    for file in sorted(ci_manifests(kinds) - set(ci_secrets(kinds, github_app))):
        r = node.sh(f"sudo -n cat {manifests_dir}/{file}")
        node.check(f"{file} holds no secret", not any(s.decode() in r.stdout for s in secrets))
