from setuptools import find_packages, setup

setup(
    name="mwconv",
    version="0.1.0",
    description="Bring pretrained weights into Keras 3 models with frozen and trainable parts, "
                "export them, and prove the export kept the partition and the numbers.",
    python_requires=">=3.11,<3.12",
    packages=find_packages(include=["mwconv", "mwconv.*"]),
    install_requires=[
        "tensorflow==2.21.0",
        "keras==3.15.1",
        "tf-keras==2.21.0",
        "h5py==3.14.0",
        "numpy==2.4.6",
        "onnx==1.23.2",
        "onnxruntime==1.32.0",
        "tf2onnx==1.17.0",
        "click==8.5.1",
    ],
    extras_require={"test": ["pytest==9.2.0", "jsonschema==4.26.0"]},
    entry_points={"console_scripts": ["mwconv=mwconv.cli:main"]},
)
