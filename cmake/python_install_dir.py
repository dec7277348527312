"""Where `cmake --install --prefix PREFIX` puts the m3serve Python package:
the directory the interpreter running this script imports from for PREFIX.

  a virtual environment (PREFIX/pyvenv.cfg):  its site-packages
  /usr on Debian:                             /usr/lib/python3/dist-packages
  /usr/local on Debian:                       /usr/local/lib/python3.X/dist-packages
  any other prefix:                           PREFIX/lib/python3.X/site-packages (add it to PYTHONPATH)
"""

import os
import sys
import sysconfig

prefix = os.path.abspath(sys.argv[1])
schemes = sysconfig.get_scheme_names()
base = prefix
if os.path.exists(os.path.join(prefix, "pyvenv.cfg")):
    scheme = "venv" if "venv" in schemes else "posix_prefix"
elif prefix == "/usr" and "deb_system" in schemes:
    scheme = "deb_system"
elif prefix == "/usr/local" and "posix_local" in schemes:
    scheme, base = "posix_local", "/usr"  # Debian's scheme adds the local/ itself
else:
    scheme = "posix_prefix"
print(sysconfig.get_path("purelib", scheme, vars={"base": base, "platbase": base}))
