import os
import sys

# Run from the source tree without installing: python3 -m pytest python/tests
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
