# Sourced by the device scripts: run the checkout's CLI without installing it (a lent machine starts bare) as `sz`
# (or "${SZ[@]}" where a command, not a function, is needed, e.g. under timeout). Needs $w, a scratch folder.
mkdir -p "$w/pp"
ln -sfn "$PWD/cli" "$w/pp/shapezoo_cli"; ln -sfn "$PWD/datasets" "$w/pp/shapezoo_datasets"
export PYTHONPATH="$PWD:$w/pp" PYTHONUNBUFFERED=1
SZ=(python3 -c 'import sys; from shapezoo_cli.main import main; sys.argv[0] = "shapezoo"; main()')
sz() { "${SZ[@]}" "$@"; }
