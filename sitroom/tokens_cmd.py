"""`sitroom token add`: create an API token and add its hash to a tokens file."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from schemas.access import Role, add_token


def add_parser(sub: Any) -> None:
    token = sub.add_parser("token", help="API tokens (stored as SHA-256 hashes)")
    tsub = token.add_subparsers(dest="token_action", required=True)
    add = tsub.add_parser(
        "add", help="create a token, append its hash to FILE and print the token once"
    )
    add.add_argument("name", help="who acts with it, recorded on every move and clear")
    add.add_argument(
        "--roles", required=True,
        help="comma-separated: " + ", ".join(r.value for r in Role),
    )  # fmt: skip
    add.add_argument("--department", help="limit it to this department (OPD)")
    add.add_argument("--file", type=Path, required=True, help="the tokens file (TOML)")


def run(args: argparse.Namespace) -> int:
    try:
        roles = [Role(r.strip()) for r in args.roles.split(",") if r.strip()]
        token = add_token(args.file, args.name, roles, args.department)
    except ValueError as exc:
        print(f"sitroom token add: {exc}", file=sys.stderr)
        return 2
    print(f"token for {args.name} added to {args.file}; give it to them now, it is not "
          "stored anywhere:", file=sys.stderr)  # fmt: skip
    print(token)
    return 0
