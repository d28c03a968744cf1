#!/bin/sh
# The R packages a registered R model needs, from its artifacts/r_packages.txt ("name==version" a line).
#   r-packages.sh debian <file>   the Debian packages to install: r-cran-<name>, lower case
#   r-packages.sh check <file>    exit 1 unless every package is installed at the version the model was fitted with
set -eu
mode=$1
file=$2
case "$mode" in
  debian)
    sed -e 's/==.*//' -e '/^[[:space:]]*$/d' "$file" | tr 'A-Z' 'a-z' | sed 's/^/r-cran-/' | tr '\n' ' '
    ;;
  check)
    status=0
    while IFS= read -r line; do
      [ -z "$line" ] && continue
      name=${line%%==*}
      wanted=${line#*==}
      found=$(Rscript -e "cat(tryCatch(as.character(packageVersion('$name')), error = function(e) 'missing'))")
      if [ "$found" != "$wanted" ]; then
        echo "R package $name: the model was fitted with $wanted, this image has $found" >&2
        status=1
      fi
    done < "$file"
    exit $status
    ;;
  *)
    echo "usage: r-packages.sh debian|check <r_packages.txt>" >&2
    exit 2
    ;;
esac
