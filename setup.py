"""Maps the repository's top-level training/ and service/ folders to steerrec.training and
steerrec.service, so the layout of the design card and a namespaced import both hold."""
from setuptools import find_packages, setup

ROOTS = {"steerrec": "steerrec", "steerrec.training": "training", "steerrec.service": "service"}

packages, package_dir = [], {}
for name, folder in ROOTS.items():
    package_dir[name] = folder
    packages.append(name)
    packages += [f"{name}.{sub}" for sub in find_packages(where=folder)]

setup(packages=packages, package_dir=package_dir)
