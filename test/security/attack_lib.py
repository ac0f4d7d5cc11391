"""The attack suite's shared helpers. Every test in test/security is one attack, tried as the
role the README's threat model names, that must fail; scripts/test.sh prints how many were
tried and how many worked (a failing or erroring test = an attack that worked).

Run against a stack started by scripts/stack.sh (its stack.env sourced), with
test/integration on PYTHONPATH for pga_stack and hardening_lib.
"""
import pga_stack as S  # noqa: F401  (re-exported for the attack files)
