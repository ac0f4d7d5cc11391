"""Attacks as a thief holding the data directory (heap, WAL), a pg_dump, or a restore with the
wrong key file: vault_disk_thief.sh searches every byte for canary keys stored through the API
(with a positive control that proves the search sees clear text) and restores the dump."""
import os
import subprocess
import sys
import unittest

import attack_lib  # noqa: F401

HERE = os.path.dirname(os.path.abspath(__file__))


class DiskThief(unittest.TestCase):
    def test_keys_are_in_no_file_no_dump_and_no_wrong_restore(self):
        r = subprocess.run(["bash", os.path.join(HERE, "vault_disk_thief.sh")], capture_output=True,
                           text=True, timeout=900)
        for line in r.stdout.splitlines():
            if line.startswith("[count]"):
                sys.stdout.write(f"\n{line}\n")
        self.assertEqual(r.returncode, 0, (r.stdout + r.stderr)[-3000:])


if __name__ == "__main__":
    unittest.main()
