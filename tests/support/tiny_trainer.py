"""The runtime's tiny trainer as a script, for ``accelerate launch`` in tests/test_multiprocess.py.

    accelerate launch --num_processes 2 --cpu tests/support/tiny_trainer.py --steps 6 --out /tmp/tiny2
"""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))  # the repo root, when not pip-installed

from t2i.runtime.demo import main  # noqa: E402

if __name__ == "__main__":
    raise SystemExit(main())
