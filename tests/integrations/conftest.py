import json
from pathlib import Path

FIXTURES = Path(__file__).parent


def fixture_bytes(provider: str, name: str) -> bytes:
    return (FIXTURES / provider / "fixtures" / name).read_bytes()


def fixture_json(provider: str, name: str):
    return json.loads(fixture_bytes(provider, name))
