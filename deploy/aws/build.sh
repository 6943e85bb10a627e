#!/bin/sh
# Builds the deployment artifacts of deploy/aws/template.yaml:
#   build/aws/lambda.zip   the schedule, collect and notify functions (ECR-findings path; python3.13, arm64)
#   the rematch image      with --image NAME: deploy/aws/Dockerfile (built-in scanner path, OSV index in /tmp)
# Usage: deploy/aws/build.sh [--image NAME[:TAG]]     (run from the repository root)
set -eu
out=build/aws
rm -rf "$out/pkg" && mkdir -p "$out/pkg"
# vulnwatch as a wheel, then it and its dependencies as wheels for the Lambda platform (no compiler)
rm -f "$out"/vulnwatch-*.whl
python3 -m pip wheel --quiet --no-deps --wheel-dir "$out" .
python3 -m pip install --quiet --target "$out/pkg" --platform manylinux2014_aarch64 --implementation cp \
    --python-version 3.13 --only-binary=:all: --upgrade "$out"/vulnwatch-*.whl
# boto3/botocore are in the Lambda runtime already; the rest is what the functions import
rm -rf "$out/pkg/boto3" "$out/pkg/botocore" "$out/pkg"/*.dist-info/RECORD
(cd "$out/pkg" && python3 -m zipfile -c ../lambda.zip .)
echo "built $out/lambda.zip ($(du -h "$out/lambda.zip" | cut -f1))"
if [ "${1:-}" = "--image" ]; then
    docker build -f deploy/aws/Dockerfile -t "${2:?image name}" .
    echo "built image ${2}"
fi
