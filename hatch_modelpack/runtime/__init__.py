"""The files that ship inside model wheels: standard library only, and parseable by Python 3.8.

Nothing here may import the rest of hatch_modelpack; the build side copies these files verbatim. The
loader's modules and their names in a model package are listed once, in ``contract.LOADER_FILES``.
"""
