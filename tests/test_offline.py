"""Offline switches hold wherever ultralytics is reached first."""

import os
import subprocess
import sys


def test_checkpoint_load_uses_project_config_and_font(tmp_path, model_dir):
    env = {**os.environ, "HOME": str(tmp_path), "XFD_CACHE_DIR": str(tmp_path / "cache")}
    env.pop("YOLO_CONFIG_DIR", None)
    code = ("from detector.engine import load_model_info; load_model_info(r'%s');"
            "from ultralytics.utils import USER_CONFIG_DIR; print(USER_CONFIG_DIR);"
            "from ultralytics.utils.checks import check_font; print(check_font('Arial.ttf'));"
            "import torch; print(torch.get_num_threads())" % (model_dir / "model.pt"))
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env)
    assert r.returncode == 0, r.stderr
    cfg, font, threads = r.stdout.split()[-3:]
    assert cfg.startswith(str(tmp_path / "cache")) and font.startswith(str(tmp_path / "cache"))
    assert not (tmp_path / ".config" / "Ultralytics").exists()
    assert int(threads) == (os.cpu_count() or 1)
