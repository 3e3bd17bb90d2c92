import sys
from pathlib import Path

# Shared builders (tests/factories.py) importable from every test folder.
sys.path.insert(0, str(Path(__file__).parent))
