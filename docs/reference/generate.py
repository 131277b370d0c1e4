"""Write train-settings.md beside this script from the settings that src/ganforge/config.py
declares: ``python docs/reference/generate.py`` after adding or changing a setting.

tests/test_settings.py fails while the file differs from what this writes.
"""

from pathlib import Path

from ganforge.config import settings_reference_markdown

TARGET = Path(__file__).with_name("train-settings.md")

if __name__ == "__main__":
    TARGET.write_text(settings_reference_markdown(), encoding="utf-8")
    print(f"wrote {TARGET}")
