"""deploy/aws/template.yaml: cfn-lint passes; the SAM template, transformed offline with
aws-sam-translator, creates in moto's CloudFormation (the resource types moto supports) a table
with its stream, queues with their dead-letter queues and one role per function holding only
that function's actions."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

TEMPLATE = Path(__file__).resolve().parents[2] / "deploy" / "aws" / "template.yaml"
PARAMS = {"CodeBucket": "vw-code", "WatchListBucket": "vw-config", "RematchImageUri": ""}
MOTO_TYPES = {"AWS::DynamoDB::Table", "AWS::SQS::Queue", "AWS::IAM::Role", "AWS::Logs::LogGroup", "AWS::S3::Bucket"}
"""What of the transformed stack is created in moto (its Lambda functions would need the code
and a container runtime; event source mappings and rules need the functions)."""

EXPECTED_ACTIONS = {
    "ScheduleRole": {"logs:CreateLogStream", "logs:PutLogEvents", "s3:GetObject", "ecr:DescribeRepositories",
                     "sqs:SendMessage", "dynamodb:GetItem", "dynamodb:PutItem", "dynamodb:UpdateItem",
                     "dynamodb:DeleteItem", "dynamodb:Query", "dynamodb:BatchGetItem", "ssm:GetParameter",
                     "secretsmanager:GetSecretValue"},
    "CollectRole": {"logs:CreateLogStream", "logs:PutLogEvents", "s3:GetObject", "s3:PutObject",
                    "sqs:ReceiveMessage", "sqs:DeleteMessage", "sqs:GetQueueAttributes",
                    "sqs:ChangeMessageVisibility", "sqs:SendMessage", "ecr:DescribeImages",
                    "ecr:DescribeImageScanFindings", "ecr:StartImageScan", "ecr:GetRegistryScanningConfiguration",
                    "ecr:GetAuthorizationToken", "ecr:BatchGetImage", "ecr:GetDownloadUrlForLayer",  # scan.mode: builtin
                    "dynamodb:GetItem", "dynamodb:PutItem", "dynamodb:UpdateItem", "dynamodb:DeleteItem",
                    "dynamodb:ConditionCheckItem", "dynamodb:Query", "dynamodb:BatchGetItem", "ssm:GetParameter",
                    "secretsmanager:GetSecretValue"},
    "NotifyRole": {"logs:CreateLogStream", "logs:PutLogEvents", "s3:GetObject", "dynamodb:DescribeStream",
                   "dynamodb:GetRecords", "dynamodb:GetShardIterator", "dynamodb:ListStreams", "dynamodb:GetItem",
                   "dynamodb:PutItem", "dynamodb:UpdateItem", "dynamodb:DeleteItem", "dynamodb:Query",
                   "dynamodb:BatchGetItem", "sqs:SendMessage", "ssm:GetParameter", "secretsmanager:GetSecretValue"},
}


def load_template() -> dict:
    from cfnlint.decode import cfn_yaml

    return json.loads(json.dumps(cfn_yaml.load(str(TEMPLATE))))


def transformed(params: dict, monkeypatch) -> dict:
    from samtranslator.translator.transform import transform

    class NoManagedPolicies:      # offline: every function has its own role, none is looked up
        def load(self):
            return {}

    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    return transform(load_template(), params, NoManagedPolicies())


def test_cfn_lint_passes():
    exe = shutil.which("cfn-lint") or str(Path(sys.executable).with_name("cfn-lint"))
    run = subprocess.run([exe, str(TEMPLATE)], capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, run.stdout + run.stderr


def _statements(role: dict) -> list[dict]:
    return [s for p in role["Properties"]["Policies"] for s in p["PolicyDocument"]["Statement"]]


def test_the_transform_wires_the_events(monkeypatch):
    res = transformed(PARAMS, monkeypatch)["Resources"]
    stream = res["NotifyFunctionChanges"]["Properties"]
    assert stream["EventSourceArn"] == {"Fn::GetAtt": ["StateTable", "StreamArn"]}
    assert stream["FunctionResponseTypes"] == ["ReportBatchItemFailures"]
    assert stream["DestinationConfig"]["OnFailure"]["Destination"] == {"Fn::GetAtt": ["NotifyDLQ", "Arn"]}
    sqs = res["CollectFunctionWork"]["Properties"]
    assert sqs["EventSourceArn"] == {"Fn::GetAtt": ["CollectQueue", "Arn"]}
    assert sqs["FunctionResponseTypes"] == ["ReportBatchItemFailures"]
    assert res["ScheduleFunctionCycle"]["Type"] == "AWS::Events::Rule"
    for name in ("ScheduleFunction", "CollectFunction", "NotifyFunction"):
        env = res[name]["Properties"]["Environment"]["Variables"]
        # secrets are references (ssm:/..., secretsmanager:...), never values
        assert env["VULNWATCH_SECRETS"] == {"Ref": "Secrets"} and env["VULNWATCH_SINKS"] == {"Ref": "Sinks"}
        assert res[name]["Properties"]["Role"] == {"Fn::GetAtt": [name.replace("Function", "Role"), "Arn"]}
    # Inspector read access only with enhanced scanning
    conditional = [s for s in _statements(res["CollectRole"]) if "Fn::If" in s]
    assert conditional and conditional[0]["Fn::If"][0] == "Enhanced"
    assert "inspector2:ListFindings" in conditional[0]["Fn::If"][1]["Action"]


@pytest.fixture
def stack(moto, monkeypatch):
    import boto3

    template = transformed(PARAMS, monkeypatch)
    keep = {k: v for k, v in template["Resources"].items() if v["Type"] in MOTO_TYPES and "Condition" not in v}
    for v in keep.values():      # moto's roles: the conditional Inspector statement resolved (basic mode)
        if v["Type"] == "AWS::IAM::Role":
            for p in v["Properties"]["Policies"]:
                p["PolicyDocument"]["Statement"] = [s for s in p["PolicyDocument"]["Statement"] if "Fn::If" not in s]
    body = {"AWSTemplateFormatVersion": "2010-09-09", "Parameters": template["Parameters"],
            "Conditions": template.get("Conditions", {}), "Resources": keep}
    cfn = boto3.client("cloudformation", region_name="us-east-1", endpoint_url=moto.url)
    cfn.create_stack(StackName="vw", TemplateBody=json.dumps(body),
                     Parameters=[{"ParameterKey": k, "ParameterValue": v} for k, v in PARAMS.items()],
                     Capabilities=["CAPABILITY_IAM"])
    status = cfn.describe_stacks(StackName="vw")["Stacks"][0]["StackStatus"]
    assert status == "CREATE_COMPLETE"
    physical = {r["LogicalResourceId"]: r["PhysicalResourceId"]
                for r in cfn.list_stack_resources(StackName="vw")["StackResourceSummaries"]}
    return physical, {k: boto3.client(k, region_name="us-east-1", endpoint_url=moto.url)
                      for k in ("dynamodb", "sqs", "iam")}


def test_the_stack_has_a_streamed_table_queues_with_dlqs_and_a_role_per_function(stack):
    physical, c = stack
    table = c["dynamodb"].describe_table(TableName=physical["StateTable"])["Table"]
    assert table["StreamSpecification"] == {"StreamEnabled": True, "StreamViewType": "NEW_AND_OLD_IMAGES"}
    assert {i["IndexName"] for i in table["GlobalSecondaryIndexes"]} == {"gsi1", "gsi2"}
    from vulnwatch.store.dynamodb import table_definition

    assert table["KeySchema"] == table_definition("x")["KeySchema"]

    def attrs(logical):
        return c["sqs"].get_queue_attributes(QueueUrl=physical[logical], AttributeNames=["All"])["Attributes"]

    dlq_arn = attrs("CollectDLQ")["QueueArn"]
    import ast

    redrive = attrs("CollectQueue")["RedrivePolicy"]      # moto writes it as a Python literal, AWS as JSON
    redrive = json.loads(redrive) if redrive.lstrip().startswith('{"') else ast.literal_eval(redrive)
    assert redrive["deadLetterTargetArn"] == dlq_arn and int(redrive["maxReceiveCount"]) == 5
    assert "NotifyDLQ" in physical         # the stream's on-failure destination (a queue of its own)

    for logical, expected in EXPECTED_ACTIONS.items():
        role = physical[logical]
        names = c["iam"].list_role_policies(RoleName=role)["PolicyNames"]
        actions = set()
        for n in names:
            doc = c["iam"].get_role_policy(RoleName=role, PolicyName=n)["PolicyDocument"]
            if isinstance(doc, str):        # moto: a Python literal of the document
                doc = json.loads(doc) if doc.lstrip().startswith('{"') else ast.literal_eval(doc)
            for s in doc["Statement"]:
                acts = s["Action"] if isinstance(s["Action"], list) else [s["Action"]]
                actions.update(acts)
                assert s["Effect"] == "Allow" and not any(a.endswith(":*") or a == "*" for a in acts)
        assert actions == expected, logical
        assert c["iam"].list_attached_role_policies(RoleName=role)["AttachedPolicies"] == []
    assert "inspector2:ListFindings" not in set().union(*EXPECTED_ACTIONS.values())
