"""mmdiode: data-free knowledge distillation for MMDetection 3.x detectors."""
from setuptools import find_packages, setup


def read_version() -> str:
    namespace: dict = {}
    with open('mmdiode/version.py', encoding='utf-8') as f:
        exec(f.read(), namespace)
    return namespace['__version__']


setup(
    name='mmdiode',
    version=read_version(),
    description='Data-free distillation of MMDetection detectors '
    '(DeepInversion for object detection, Multi-Object Impressions, HGD)',
    long_description=open('README.md', encoding='utf-8').read()
    if __import__('os').path.exists('README.md') else '',
    long_description_content_type='text/markdown',
    packages=find_packages(include=['mmdiode', 'mmdiode.*']),
    python_requires='>=3.8',
    # Ranges match the pinned stack of tools/install.sh; mmcv must be built
    # with ops beforehand (PyPI has no binary wheel), see README.
    install_requires=[
        'torch>=2.0',
        'mmengine>=0.10,<1.0',
        'mmcv>=2.0.0rc4,<2.2.0',
        'mmdet>=3.3,<3.4',
        'kornia>=0.7',
        'pycocotools>=2.0.7',
        'numpy',
        'matplotlib',
    ],
    extras_require={
        'benchmark': ['scikit-learn>=1.3', 'scikit-image>=0.21'],
        'tests': [
            'pytest>=7.4', 'pytest-xdist>=3.5', 'scikit-learn>=1.3',
            'scikit-image>=0.21'
        ],
    },
    license='Apache-2.0',
)
