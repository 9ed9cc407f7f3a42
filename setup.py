"""The build step pyproject.toml cannot declare: the wheel carries the release int8 TFLite.

``build_py`` copies ``exported/release/basic_cnn-int8-qat.tflite`` and its manifest into
``edgecnn/_models/`` of the build, so ``pip install edgecnn[edge]`` then ``edgecnn scan IMAGE``
finds a default model without a source tree (``edgecnn.paths.release_model_dir``). Only these two
files: the ONNX and Keras artifacts stay in the source tree. An editable install reads
``exported/release`` itself and copies nothing. Metadata is in pyproject.toml.
"""

import shutil
from pathlib import Path

from setuptools import setup
from setuptools.command.build_py import build_py

RELEASE = Path(__file__).resolve().parent / "exported" / "release"
PACKAGED = ("basic_cnn-int8-qat.tflite", "basic_cnn-int8-qat.tflite.json")


class BuildWithReleaseModel(build_py):
    def run(self):
        super().run()
        if self.editable_mode:
            return
        missing = [name for name in PACKAGED if not (RELEASE / name).is_file()]
        if missing:
            raise SystemExit(f"edgecnn build: {', '.join(missing)} not in {RELEASE}; the wheel carries the release "
                             "model (a source checkout or the sdist has it)")
        dest = Path(self.build_lib) / "edgecnn" / "_models"
        dest.mkdir(parents=True, exist_ok=True)
        for name in PACKAGED:
            shutil.copyfile(RELEASE / name, dest / name)


setup(cmdclass={"build_py": BuildWithReleaseModel})
