"""Attacks on the README's "Verified users" rows: an application role (alpaca_app) that forges,
bends or replays JSON Web Tokens, and one that tries to name a user without a token once
pg_alpaca.user_source = jwt. Tokens are signed by an independent implementation, the openssl
command (RS256, PS256, ES256 with `openssl dgst`, Ed25519 with `openssl pkeyutl`); the key set
file is written from the keys' public numbers as openssl prints them.
"""
import base64
import hashlib
import hmac
import json
import os
import subprocess
import tempfile
import time
import unittest
import uuid

import psycopg

import attack_lib  # noqa: F401
import pga_stack as S

stackctl = S.stackctl
AUD, ISS = "pg_alpaca-tests", "https://idp.test/"
CROSS_USER_READS = []  # (attack, rows of another user's it saw): every entry must be 0


def b64u(data):
    if isinstance(data, str):
        data = data.encode()
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def openssl(*args, data=None):
    return subprocess.run(["openssl", *args], input=data, capture_output=True, check=True).stdout


def der_to_raw(der):
    """ECDSA-Sig-Value (DER SEQUENCE of two INTEGERs) -> r||s, 32 bytes each."""
    assert der[0] == 0x30
    i = 2 if der[1] < 0x80 else 3
    out = b""
    for _ in range(2):
        assert der[i] == 0x02
        n = der[i + 1]
        out += der[i + 2:i + 2 + n].lstrip(b"\0").rjust(32, b"\0")
        i += 2 + n
    return out


class Key:
    """A private key made by openssl, its public JWK, and openssl signing."""

    def __init__(self, tmp, name, alg):
        self.alg, self.kid = alg, name
        self.path = os.path.join(tmp, name + ".pem")
        if alg in ("RS256", "PS256"):
            openssl("genpkey", "-algorithm", "RSA", "-pkeyopt", "rsa_keygen_bits:2048", "-out", self.path)
            modulus = openssl("rsa", "-in", self.path, "-noout", "-modulus").decode().strip()
            n = bytes.fromhex(modulus.split("=", 1)[1])
            self.jwk = {"kty": "RSA", "kid": name, "alg": alg, "n": b64u(n), "e": "AQAB"}
        elif alg == "ES256":
            openssl("genpkey", "-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:P-256", "-out", self.path)
            spki = openssl("pkey", "-in", self.path, "-pubout", "-outform", "DER")
            point = spki[-65:]
            assert point[0] == 4
            self.jwk = {"kty": "EC", "kid": name, "crv": "P-256", "x": b64u(point[1:33]), "y": b64u(point[33:])}
        else:
            openssl("genpkey", "-algorithm", "ED25519", "-out", self.path)
            spki = openssl("pkey", "-in", self.path, "-pubout", "-outform", "DER")
            self.jwk = {"kty": "OKP", "kid": name, "crv": "Ed25519", "x": b64u(spki[-32:])}
        self.public_pem = openssl("pkey", "-in", self.path, "-pubout")

    def sign(self, data):
        if self.alg == "RS256":
            return openssl("dgst", "-sha256", "-sign", self.path, data=data)
        if self.alg == "PS256":
            return openssl("dgst", "-sha256", "-sigopt", "rsa_padding_mode:pss", "-sigopt",
                           "rsa_pss_saltlen:32", "-sign", self.path, data=data)
        if self.alg == "ES256":
            return der_to_raw(openssl("dgst", "-sha256", "-sign", self.path, data=data))
        with tempfile.NamedTemporaryFile() as f:
            f.write(data)
            f.flush()
            return openssl("pkeyutl", "-sign", "-inkey", self.path, "-rawin", "-in", f.name)


def claims(sub, **kw):
    now = int(time.time())
    c = {"sub": sub, "iss": ISS, "aud": AUD, "iat": now, "exp": now + 300}
    c.update(kw)
    return {k: v for k, v in c.items() if v is not None}


def raw_token(key, header_json, payload_json, sign_with=None):
    """header/payload given as exact JSON text; signed by key (or sign_with(bytes))."""
    signing_input = (b64u(header_json) + "." + b64u(payload_json)).encode()
    sig = sign_with(signing_input) if sign_with else key.sign(signing_input)
    return signing_input.decode() + "." + b64u(sig)


def token(key, sub="alice", header=None, **kw):
    h = {"alg": key.alg, "typ": "JWT", "kid": key.kid}
    h.update(header or {})
    h = {k: v for k, v in h.items() if v is not None}
    return raw_token(key, json.dumps(h), json.dumps(claims(sub, **kw)))


def wait_setting(conn, name, value, timeout=10):
    """A reload reaches each backend at its next command: wait until this one has it."""
    deadline = time.time() + timeout
    while time.time() < deadline:
        if conn.execute("SELECT current_setting(%s, true)", (name,)).fetchone()[0] == value:
            return
        time.sleep(0.05)
    raise AssertionError(f"{name} did not become {value!r}")


class JwtBase(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.tmp = tempfile.mkdtemp(prefix="pga-jwt-")
        cls.keys = {a: Key(cls.tmp, f"k-{a.lower()}", a) for a in ("RS256", "PS256", "ES256", "EdDSA")}
        cls.rsa2 = Key(cls.tmp, "k-rs256-second", "RS256")
        cls.outsider = Key(cls.tmp, "k-outsider", "RS256")  # not in the key set
        cls.hs_secret = os.urandom(32)
        jwks = {"keys": [k.jwk for k in cls.keys.values()] + [cls.rsa2.jwk] +
                [{"kty": "oct", "kid": "k-hs256", "alg": "HS256", "k": b64u(cls.hs_secret)}]}
        cls.jwks_path = os.path.join(S.STACK.dir, "keys", f"jwt-{uuid.uuid4().hex[:8]}.jwks")
        stackctl.write_file(cls.jwks_path, json.dumps(jwks), stackctl.RUNNER,
                            stackctl.primary_group(stackctl.RUNNER), 0o600)
        # Reset whatever happens next (a failing setUpClass included), and wait until new
        # sessions see the reset, so the files that run after this one find user_source = setting.
        cls.addClassCleanup(cls.reset_settings)
        S.STACK.cluster.set({"pg_alpaca.jwt_keys_file": cls.jwks_path, "pg_alpaca.jwt_audience": AUD,
                             "pg_alpaca.jwt_issuer": ISS})
        cls.app = S.connect(role="app")
        wait_setting(cls.app, "pg_alpaca.jwt_audience", AUD)

    @classmethod
    def reset_settings(cls):
        if getattr(cls, "app", None) is not None:
            cls.app.close()
        S.STACK.cluster.set({"pg_alpaca.jwt_keys_file": None, "pg_alpaca.jwt_audience": None,
                             "pg_alpaca.jwt_issuer": None, "pg_alpaca.user_source": None})
        with S.connect(role="app") as c:
            wait_setting(c, "pg_alpaca.user_source", "setting")
        if os.path.exists(cls.jwks_path):
            os.unlink(cls.jwks_path)
        subprocess.run(["rm", "-rf", cls.tmp], check=False)

    def hs256(self, data, secret=None):
        return hmac.new(secret or self.hs_secret, data, hashlib.sha256).digest()

    def verify(self, tok, conn=None):
        """(user, None) when accepted, (None, (sqlstate, message)) when refused."""
        conn = conn or self.app
        try:
            with conn.transaction():
                return conn.execute("SELECT alpaca_set_user_jwt(%s)", (tok,)).fetchone()[0], None
        except psycopg.Error as e:
            return None, (e.sqlstate, e.diag.message_primary or "")

    def assertRefused(self, tok, reason):
        user, err = self.verify(tok)
        self.assertIsNone(user, "the token was accepted")
        self.assertEqual(err[0], "28000", err)
        self.assertIn(reason, err[1])
        # The message never echoes the token (nor any of its three parts).
        for part in tok.split(".")[:3]:
            if len(part) >= 8:
                self.assertNotIn(part[:16], err[1])
        self.assertLess(len(err[1]), 300)


class JwtTokens(JwtBase):
    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        # The controls: every algorithm, signed by openssl, verifies (else nothing below means
        # anything).
        for alg, key in cls.keys.items():
            with cls.app.transaction():
                got = cls.app.execute("SELECT alpaca_set_user_jwt(%s), alpaca_current_user()",
                                      (token(key, f"user-{alg}"),)).fetchone()
            assert got == (f"user-{alg}", f"user-{alg}"), (alg, got)
        h = json.dumps({"alg": "HS256", "kid": "k-hs256"})
        tok = raw_token(None, h, json.dumps(claims("user-hs")), sign_with=lambda d: hmac.new(
            cls.hs_secret, d, hashlib.sha256).digest())
        with cls.app.transaction():
            assert cls.app.execute("SELECT alpaca_set_user_jwt(%s)", (tok,)).fetchone()[0] == "user-hs"

    def test_forged_signature(self):
        """A token is believed only when its signature verifies with the key its kid names."""
        for alg, key in self.keys.items():
            with self.subTest(alg=alg):
                good = token(key, "mallory")
                sig = bytearray(base64.urlsafe_b64decode(good.rsplit(".", 1)[1] + "=="))
                sig[10] ^= 1
                self.assertRefused(good.rsplit(".", 1)[0] + "." + b64u(bytes(sig)), "bad signature")
                # The payload changed after signing: "sub" swapped for another user.
                h, p, s = good.split(".")
                body = json.loads(base64.urlsafe_b64decode(p + "=="))
                body["sub"] = "alice"
                self.assertRefused(h + "." + b64u(json.dumps(body)) + "." + s, "bad signature")

    def test_alg_none(self):
        """alg none is never accepted, with or without a signature part."""
        body = b64u(json.dumps(claims("alice")))
        for alg in ("none", "None", "NONE"):
            h = b64u(json.dumps({"alg": alg, "kid": "k-rs256"}))
            self.assertRefused(f"{h}.{body}.{b64u('x')}", "algorithm is not allowed")
            self.assertRefused(f"{h}.{body}.", "malformed")

    def test_hs256_keyed_with_the_rsa_public_key(self):
        """The RSA key's public PEM used as an HMAC secret (key confusion) is refused."""
        rsa = self.keys["RS256"]
        for kid in ("k-rs256", None):
            h = {"alg": "HS256", "kid": kid} if kid else {"alg": "HS256"}
            for secret in (rsa.public_pem, rsa.public_pem.strip(), json.dumps(rsa.jwk).encode()):
                tok = raw_token(None, json.dumps(h), json.dumps(claims("alice")),
                                sign_with=lambda d, s=secret: self.hs256(d, s))
                self.assertRefused(tok, "algorithm is not allowed" if kid else "unknown key id")

    def test_kid_naming_another_key(self):
        """A signature by one key with a kid naming another is refused; other keys are never tried."""
        rsa, rsa2 = self.keys["RS256"], self.rsa2
        self.assertRefused(token(rsa2, header={"kid": rsa.kid}), "bad signature")
        self.assertRefused(token(self.outsider, header={"kid": rsa.kid}), "bad signature")
        self.assertRefused(token(self.outsider), "unknown key id")
        self.assertRefused(token(rsa, header={"kid": None}), "unknown key id")
        # The ES256 key's kid on an RS256 token, the PS256 key for RS256: not the key's algorithm.
        self.assertRefused(token(rsa, header={"kid": self.keys["ES256"].kid}), "algorithm is not allowed")
        self.assertRefused(token(self.keys["PS256"], header={"alg": "RS256"}), "algorithm is not allowed")

    def test_expired_and_not_yet_valid(self):
        """exp, nbf and iat beyond the 30 s leeway are refused (within it, accepted)."""
        key = self.keys["ES256"]
        now = int(time.time())
        self.assertRefused(token(key, exp=now - 40), "expired")
        self.assertRefused(token(key, exp=None), "malformed")
        self.assertRefused(token(key, exp=str(now + 60)), "malformed")
        self.assertRefused(token(key, nbf=now + 60), "not yet valid")
        self.assertRefused(token(key, iat=now + 60), "not yet valid")
        self.assertEqual(self.verify(token(key, exp=now - 10))[0], "alice")
        self.assertEqual(self.verify(token(key, nbf=now + 10))[0], "alice")

    def test_wrong_audience_or_issuer(self):
        """A token for another audience, or from another issuer, is refused."""
        key = self.keys["EdDSA"]
        self.assertRefused(token(key, aud="another-service"), "wrong audience")
        self.assertRefused(token(key, aud=["another-service", "x"]), "wrong audience")
        self.assertRefused(token(key, aud=None), "wrong audience")
        self.assertRefused(token(key, iss="https://evil.test/"), "wrong issuer")
        self.assertRefused(token(key, iss=None), "wrong issuer")
        self.assertEqual(self.verify(token(key, aud=["x", AUD]))[0], "alice")

    def test_duplicate_members(self):
        """A header with two alg members (or claims with two sub) is refused, whatever each says."""
        key = self.keys["RS256"]
        body = json.dumps(claims("alice"))
        for h in ('{"alg":"RS256","alg":"RS256","kid":"k-rs256"}',
                  '{"alg":"HS256","kid":"k-rs256","alg":"RS256"}',
                  '{"alg":"RS256","kid":"k-rs256","kid":"k-rs256"}'):
            self.assertRefused(raw_token(key, h, body), "malformed")
        c = claims("alice")
        two_subs = json.dumps(c)[:-1] + ', "sub": "bob"}'
        self.assertRefused(raw_token(key, '{"alg":"RS256","kid":"k-rs256"}', two_subs), "malformed")

    def test_header_crit_typ_embedded_keys(self):
        """crit, a typ other than JWT, and keys carried in the header are refused."""
        key = self.keys["RS256"]
        self.assertRefused(token(key, header={"crit": ["exp"]}), "malformed")
        self.assertRefused(token(key, header={"typ": "at+jwt+x"}), "malformed")
        self.assertRefused(token(key, header={"jwk": self.outsider.jwk}), "malformed")
        self.assertRefused(token(key, header={"jku": "https://evil.test/jwks"}), "malformed")

    def test_non_strict_base64(self):
        """Padding, whitespace and the standard alphabet in any part are refused."""
        key = self.keys["PS256"]
        good = token(key)
        h, p, s = good.split(".")
        padded = [x + "=" * (-len(x) % 4) for x in (h, p, s)]
        for i in range(3):
            parts = [h, p, s]
            if padded[i] != parts[i]:
                parts[i] = padded[i]
                self.assertRefused(".".join(parts), "malformed")
        self.assertRefused(".".join([h, p, s + "=="]), "malformed")
        for ws in (" ", "\n", "\t", "\r\n"):
            self.assertRefused(".".join([h, p[:5] + ws + p[5:], s]), "malformed")
            self.assertRefused(good + ws, "malformed")
        std = lambda x: x.replace("-", "+").replace("_", "/")  # noqa: E731
        tok = None
        for _ in range(20):  # until the signature holds a '-' or '_'
            tok = token(key, sub=f"alice-{uuid.uuid4().hex[:4]}")
            if std(tok) != tok:
                break
        self.assertNotEqual(std(tok), tok)
        self.assertRefused(std(tok), "malformed")

    def test_one_mib_token(self):
        """A 1 MiB token (and one just over 16 KiB) is refused before it is parsed."""
        key = self.keys["EdDSA"]
        big = token(key, pad="x" * (1 << 20))
        self.assertGreater(len(big), 1 << 20)
        self.assertRefused(big, "too large")
        self.assertRefused("a" * (16 * 1024 + 1), "too large")
        self.assertRefused(token(key, pad="y" * 13000), "too large")
        self.assertEqual(self.verify(token(key, pad="z" * 8000))[0], "alice")

    def test_no_user_claim(self):
        """A token without a usable user id names nobody."""
        key = self.keys["ES256"]
        self.assertRefused(token(key, sub=None), "no user claim")
        self.assertRefused(token(key, sub=""), "no user claim")
        self.assertRefused(token(key, sub=7), "no user claim")
        self.assertRefused(token(key, sub="a\nb"), "no user claim")

    def test_token_in_no_log_or_error(self):
        """A token sent as SQL text (not a bound parameter) reaches neither the error nor the log."""
        key = self.keys["RS256"]
        for tok in (token(key, exp=int(time.time()) - 100), token(key, aud="x") + "=",
                    token(self.outsider)):
            marker = tok.rsplit(".", 1)[1][:24]
            with self.assertRaises(psycopg.Error) as cm:
                self.app.execute(f"SELECT alpaca_set_user_jwt('{tok}')")
            self.assertEqual(cm.exception.sqlstate, "28000")
            self.assertNotIn(marker, str(cm.exception))
            msg = cm.exception.diag.message_primary
            self.assertTrue(S.wait_until(lambda: msg in S.read_log("PGA_POSTGRES_LOG"), 5))
            self.assertNotIn(marker, S.read_log("PGA_POSTGRES_LOG"))

    def test_removed_key_is_no_longer_trusted(self):
        """A key taken out of the key set file stops verifying at once (the file is re-read when
        it changes), and a key set file others may read is refused, naming the file only."""
        rsa = self.keys["RS256"]
        tok = token(rsa)
        self.assertEqual(self.verify(tok)[0], "alice")
        with S.connect() as su:
            original = su.execute("SELECT pg_read_file(%s)", (self.jwks_path,)).fetchone()[0]
        group = stackctl.primary_group(stackctl.RUNNER)
        try:
            smaller = json.loads(original)
            smaller["keys"] = [k for k in smaller["keys"] if k.get("kid") != rsa.kid]
            stackctl.write_file(self.jwks_path, json.dumps(smaller), stackctl.RUNNER, group, 0o600)
            self.assertRefused(tok, "unknown key id")
            self.assertEqual(self.verify(token(self.keys["ES256"]))[0], "alice")
            os.chmod(self.jwks_path, 0o640)
            user, err = self.verify(token(self.keys["ES256"]))
            self.assertIsNone(user)
            self.assertEqual(err[0], "F0000")
            self.assertIn(self.jwks_path, err[1])
            self.assertIn("group or others", err[1])
            self.assertNotIn(self.keys["ES256"].jwk["x"][:12], err[1])
        finally:
            stackctl.write_file(self.jwks_path, original, stackctl.RUNNER, group, 0o600)
        self.assertEqual(self.verify(tok)[0], "alice")

    def test_app_changes_no_verification_setting(self):
        """No setting a client can change influences verification."""
        for name in ("pg_alpaca.jwt_keys_file", "pg_alpaca.jwt_audience", "pg_alpaca.jwt_issuer",
                     "pg_alpaca.jwt_user_claim", "pg_alpaca.jwt_leeway", "pg_alpaca.user_source"):
            for sql in (f"SET {name} = 'x'", f"SET LOCAL {name} = 'x'",
                        f"ALTER SYSTEM SET {name} = 'x'", f"ALTER ROLE app SET {name} = 'x'"):
                with self.subTest(sql=sql):
                    with self.assertRaises(psycopg.Error) as cm:
                        if "LOCAL" in sql:
                            with self.app.transaction():
                                self.app.execute(sql)
                        else:
                            self.app.execute(sql)  # autocommit: ALTER SYSTEM needs it
                    self.assertIn(cm.exception.sqlstate, ("42501", "55P02"))
        with self.assertRaises(psycopg.Error):
            with self.app.transaction():
                self.app.execute("SELECT set_config('pg_alpaca.jwt_audience', 'another-service', true)")


class JwtUserSource(JwtBase):
    """With pg_alpaca.user_source = jwt, an alpaca_app member reaches only a proven user's rows."""

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.alice, cls.bob = f"jwt-alice-{uuid.uuid4().hex[:6]}", f"jwt-bob-{uuid.uuid4().hex[:6]}"
        cls.alice_cred = S.store(cls.app, cls.alice, S.ALICE, S.fixture_secret(S.ALICE))
        cls.bob_cred = S.store(cls.app, cls.bob, S.BOB, S.fixture_secret(S.BOB))
        # The attack path works while user_source = setting: SET LOCAL does name bob.
        with cls.app.transaction():
            cls.app.execute(f"SET LOCAL app.current_user_id = '{cls.bob}'")
            n = cls.app.execute("SELECT count(*) FROM alpaca_list_credentials() WHERE id = %s",
                                (cls.bob_cred,)).fetchone()[0]
        assert n == 1, n
        S.STACK.cluster.set({"pg_alpaca.user_source": "jwt"})
        cls.app.close()
        cls.app = S.connect(role="app")
        wait_setting(cls.app, "pg_alpaca.user_source", "jwt")
        # The control: alice's own token shows her credential, and a broker call with it goes
        # through the sidecar (the ticket's user is set inside the redemption).
        with cls.app.transaction():
            cls.app.execute("SELECT alpaca_set_user_jwt(%s)", (token(cls.keys["RS256"], cls.alice),))
            own = cls.app.execute("SELECT id FROM alpaca_list_credentials()").fetchall()
            status = cls.app.execute("SELECT status FROM alpaca_account(%s)", (cls.alice_cred,)).fetchone()
        assert [r[0] for r in own] == [cls.alice_cred], own
        assert status is not None

    @classmethod
    def tearDownClass(cls):
        print(f"\n[count] cross-user attempts: {len(CROSS_USER_READS)}")
        print(f"[count] cross-user reads: {sum(n for _, n in CROSS_USER_READS)}")

    def bob_rows(self, attack, setup, params=()):
        """Runs setup then reads every way an application can; returns how many of bob's it saw."""
        seen = 0
        for sql, args in (("SELECT id FROM alpaca_list_credentials() WHERE id = %s", (self.bob_cred,)),
                          ("SELECT id FROM alpaca_list_credentials()", ()),
                          ("SELECT status FROM alpaca_account(%s)", (self.bob_cred,)),
                          ("SELECT alpaca_issue_ticket(%s, 'account')", (self.bob_cred,)),
                          ("SELECT alpaca_validate_credential(%s)", (self.bob_cred,))):
            try:
                with self.app.transaction():
                    with self.app.cursor() as cur:
                        try:
                            cur.execute(setup, params)
                        except psycopg.Error:
                            raise
                        cur.execute(sql, args)
                        rows = cur.fetchall()
                        if "list_credentials()" in sql and "WHERE" not in sql:
                            rows = [r for r in rows if r[0] == self.bob_cred]
                        seen += len(rows)
            except psycopg.Error:
                pass
        CROSS_USER_READS.append((attack, seen))
        return seen

    def test_set_user_refused(self):
        """alpaca_set_user names nobody for alpaca_app once user_source = jwt."""
        with self.assertRaises(psycopg.Error) as cm:
            with self.app.transaction():
                self.app.execute("SELECT alpaca_set_user(%s)", (self.bob,))
        self.assertEqual(cm.exception.sqlstate, "42501")
        self.assertEqual(self.bob_rows("alpaca_set_user", "SELECT 1"), 0)
        # Even right after alice's own verified token.
        self.assertEqual(self.bob_rows(
            "alpaca_set_user after a token",
            "SELECT alpaca_set_user_jwt(%s), alpaca._set_user(%s)",
            (token(self.keys["ES256"], self.alice), self.bob)), 0)

    def test_set_local_names_nobody(self):
        """SET LOCAL of the user setting (or set_config) makes nobody a user."""
        for setup in (f"SET LOCAL app.current_user_id = '{self.bob}'",
                      f"SELECT set_config('app.current_user_id', '{self.bob}', true)",
                      f"SET app.current_user_id = '{self.bob}'"):
            with self.subTest(setup=setup):
                self.assertEqual(self.bob_rows(setup, setup), 0)
                with self.app.transaction():
                    self.app.execute(setup)
                    self.assertIsNone(self.app.execute("SELECT alpaca_current_user()").fetchone()[0])
        self.app.execute("RESET app.current_user_id")
        # alice proven, then the setting overwritten with bob's name: nobody, not bob.
        setup = "SELECT alpaca_set_user_jwt(%s); SET LOCAL app.current_user_id = '" + self.bob + "'"
        with self.app.transaction():
            self.app.execute("SELECT alpaca_set_user_jwt(%s)", (token(self.keys["EdDSA"], self.alice),))
            self.app.execute(f"SET LOCAL app.current_user_id = '{self.bob}'")
            self.assertIsNone(self.app.execute("SELECT alpaca_current_user()").fetchone()[0])
            n = self.app.execute("SELECT count(*) FROM alpaca_list_credentials() WHERE id = %s",
                                 (self.bob_cred,)).fetchone()[0]
        CROSS_USER_READS.append((setup, n))
        self.assertEqual(n, 0)

    def test_token_for_another_audience(self):
        """bob's token minted for another service does not make bob the user here."""
        tok = token(self.keys["PS256"], self.bob, aud="another-service")
        self.assertEqual(self.bob_rows("token for another audience", "SELECT alpaca_set_user_jwt(%s)",
                                       (tok,)), 0)
        self.assertRefused(tok, "wrong audience")

    def test_verified_user_ends_with_its_transaction(self):
        """A verified user does not outlive its transaction or a rolled-back savepoint."""
        with self.app.transaction():
            self.app.execute("SELECT alpaca_set_user_jwt(%s)", (token(self.keys["RS256"], self.alice),))
        with self.app.transaction():
            self.app.execute(f"SET LOCAL app.current_user_id = '{self.alice}'")
            self.assertIsNone(self.app.execute("SELECT alpaca_current_user()").fetchone()[0])
        with self.app.transaction():
            self.app.execute("SELECT alpaca_set_user_jwt(%s)", (token(self.keys["RS256"], self.alice),))
            self.app.execute("SAVEPOINT s")
            self.app.execute("SELECT alpaca_set_user_jwt(%s)", (token(self.keys["RS256"], self.bob),))
            self.assertEqual(self.app.execute("SELECT alpaca_current_user()").fetchone()[0], self.bob)
            self.app.execute("ROLLBACK TO SAVEPOINT s")
            self.assertEqual(self.app.execute("SELECT alpaca_current_user()").fetchone()[0], self.alice)
            n = self.app.execute("SELECT count(*) FROM alpaca_list_credentials() WHERE id = %s",
                                 (self.bob_cred,)).fetchone()[0]
        CROSS_USER_READS.append(("after ROLLBACK TO SAVEPOINT", n))
        self.assertEqual(n, 0)


if __name__ == "__main__":
    unittest.main()
