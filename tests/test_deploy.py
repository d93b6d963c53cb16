"""
What ships to AWS, checked as far as this machine allows: the CloudFormation
template passes cfn-lint and matches the code, the ECS task definition and
the uploads bucket's S3 settings are valid API requests, and every way of
serving runs the Procfile's daphne command with health checks on /healthz.
"""

import json
import re
import shutil
import subprocess
import sys
from pathlib import Path

import botocore.session
import pytest
import yaml
from botocore.validate import validate_parameters
from cfnlint.decode import cfn_yaml
from django.conf import settings

from chat import health
from chat.iam import APPLICATION, EXAMPLE_UPLOADS_BUCKET, STATIC_DEPLOY, TABLES
from chat.uploads import storage

from .support.daphne import procfile_command, serve_argv
from .support.processes import ROOT

TEMPLATE = ROOT / "deploy" / "cloudformation" / "chat.yaml"
TASK_DEFINITION = ROOT / "deploy" / "ecs" / "task-definition.json"
EB_CONFIG = ROOT / ".ebextensions" / "01-chat.config"
NGINX = ROOT / ".platform" / "nginx" / "conf.d"
# The uploads bucket's CORS and lifecycle as S3 API requests, for a bucket made without CloudFormation.
UPLOADS_CORS = ROOT / "deploy" / "s3" / "uploads-cors.json"
UPLOADS_LIFECYCLE = ROOT / "deploy" / "s3" / "uploads-lifecycle.json"
ALB_IDLE_TIMEOUT = 3600  # seconds a quiet WebSocket stays open through the load balancer

# Template role -> the deploy/iam/ document it must match.
TEMPLATE_ROLES = {"ApplicationRole": APPLICATION, "StaticDeployRole": STATIC_DEPLOY}
# Template table -> the name ensure_tables gives it by default.
TEMPLATE_TABLES = {
    "ConnectionsTable": "ChatConnections",
    "InstancesTable": "ChatInstances",
    "MessagesTable": "ChatMessages",
    "RoomsTable": "ChatRooms",
}
# Tables worth restoring to a point in time; heartbeats are rewritten every interval.
RECOVERABLE_TABLES = {"ConnectionsTable", "MessagesTable", "RoomsTable"}
# Each bucket -> its policy, and the CloudFront distribution that alone may read it.
TEMPLATE_BUCKETS = {
    "StaticBucket": ("StaticBucketPolicy", "StaticDistribution"),
    "UploadsBucket": ("UploadsBucketPolicy", "UploadsDistribution"),
}
# What the template's substitutions stand for in deploy/'s example documents (deploy/iam/'s default names).
DEFAULT_NAMES = {
    "AWS::Partition": "aws",
    "AWS::Region": "us-east-1",
    "AWS::AccountId": "*",
    "ConnectionsTable": "ChatConnections",
    "InstancesTable": "ChatInstances",
    "MessagesTable": "ChatMessages",
    "RoomsTable": "ChatRooms",
    "StaticBucket": "chat-static",
    "UploadsBucket": EXAMPLE_UPLOADS_BUCKET,
    "DomainName": "chat.example.com",
}


@pytest.fixture(scope="module")
def template() -> dict:
    return cfn_yaml.loads(TEMPLATE.read_text())


@pytest.fixture(scope="module")
def task_definition() -> dict:
    return json.loads(TASK_DEFINITION.read_text())


def resources(template: dict, kind: str) -> dict:
    return {name: r["Properties"] for name, r in template["Resources"].items() if r["Type"] == kind}


def test_the_cloudformation_template_passes_cfn_lint():
    cfn_lint = shutil.which("cfn-lint", path=str(Path(sys.executable).parent)) or shutil.which("cfn-lint")
    assert cfn_lint, "cfn-lint is missing: .venv/bin/pip install -r requirements-dev.txt"
    done = subprocess.run([cfn_lint, str(TEMPLATE)], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stdout + done.stderr


def substitute(value) -> str:
    text = value["Fn::Sub"] if isinstance(value, dict) else value
    return re.sub(r"\$\{([^}]+)\}", lambda m: DEFAULT_NAMES[m.group(1)], text)


def test_the_template_roles_grant_exactly_the_statements_of_deploy_iam(template):
    for role, policy in TEMPLATE_ROLES.items():
        [inline] = template["Resources"][role]["Properties"]["Policies"]
        statements = {
            s["Sid"]: {"Effect": s["Effect"], "Action": sorted(s["Action"]), "Resource": substitute(s["Resource"])}
            for s in inline["PolicyDocument"]["Statement"]
        }
        document = json.loads((ROOT / "deploy" / "iam" / f"{policy}.json").read_text())
        expected = {s["Sid"]: {k: s[k] for k in ("Effect", "Action", "Resource")} for s in document["Statement"]}
        assert statements == expected, role


@pytest.mark.parametrize("resource", list(TEMPLATE_TABLES))
def test_the_template_makes_each_table_as_ensure_tables_does(template, dynamodb_local, resource):
    client = dynamodb_local.client()
    made = client.describe_table(TableName=TEMPLATE_TABLES[resource])["Table"]
    table = template["Resources"][resource]["Properties"]
    assert sorted(table["AttributeDefinitions"], key=str) == sorted(made["AttributeDefinitions"], key=str)
    assert table["KeySchema"] == made["KeySchema"]
    indexes = {i["IndexName"]: (i["KeySchema"], i["Projection"]) for i in made.get("GlobalSecondaryIndexes", [])}
    assert {
        i["IndexName"]: (i["KeySchema"], i["Projection"]) for i in table.get("GlobalSecondaryIndexes", [])
    } == indexes
    ttl = client.describe_time_to_live(TableName=TEMPLATE_TABLES[resource])["TimeToLiveDescription"]
    assert table["TimeToLiveSpecification"] == {"AttributeName": ttl["AttributeName"], "Enabled": True}


def test_every_table_is_on_demand_encrypted_and_expires_items(template):
    tables = resources(template, "AWS::DynamoDB::Table")
    assert set(tables) == set(TEMPLATE_TABLES)
    for name, table in tables.items():
        assert table["BillingMode"] == "PAY_PER_REQUEST", name
        assert table["SSESpecification"] == {"SSEEnabled": True}, name
        assert table["TimeToLiveSpecification"] == {"AttributeName": "expiresAt", "Enabled": True}, name
        recovery = table.get("PointInTimeRecoverySpecification", {}).get("PointInTimeRecoveryEnabled", False)
        assert recovery == (name in RECOVERABLE_TABLES), name
    assert template["Resources"]["MessagesTable"]["DeletionPolicy"] == "Retain"


@pytest.mark.parametrize("name", list(TEMPLATE_BUCKETS))
def test_each_bucket_is_private_encrypted_and_read_only_by_its_cloudfront(template, name):
    buckets = resources(template, "AWS::S3::Bucket")
    assert set(buckets) == set(TEMPLATE_BUCKETS)
    bucket = buckets[name]
    assert all(bucket["PublicAccessBlockConfiguration"].values())
    assert bucket["OwnershipControls"] == {"Rules": [{"ObjectOwnership": "BucketOwnerEnforced"}]}
    assert bucket["BucketEncryption"]["ServerSideEncryptionConfiguration"]
    policy_name, distribution_name = TEMPLATE_BUCKETS[name]
    policy = resources(template, "AWS::S3::BucketPolicy")[policy_name]
    assert policy["Bucket"] == {"Ref": name}
    allows = [s for s in policy["PolicyDocument"]["Statement"] if s["Effect"] == "Allow"]
    assert [(s["Principal"], s["Action"]) for s in allows] == [
        ({"Service": "cloudfront.amazonaws.com"}, "s3:GetObject")
    ]
    assert (
        f"distribution/${{{distribution_name}}}" in allows[0]["Condition"]["StringEquals"]["AWS:SourceArn"]["Fn::Sub"]
    )
    [origin] = resources(template, "AWS::CloudFront::Distribution")[distribution_name]["DistributionConfig"]["Origins"]
    assert "OriginAccessControlId" in origin
    assert origin["DomainName"] == {"Fn::GetAtt": [name, "RegionalDomainName"]}


def uploads_bucket(template: dict) -> dict:
    return template["Resources"]["UploadsBucket"]["Properties"]


def test_only_the_site_may_post_files_to_the_uploads_bucket(template):
    [rule] = uploads_bucket(template)["CorsConfiguration"]["CorsRules"]
    assert sorted(rule["AllowedMethods"]) == ["GET", "POST"]
    [cfn_container] = template["Resources"]["TaskDefinition"]["Properties"]["ContainerDefinitions"]
    environment = {e["Name"]: e["Value"] for e in cfn_container["Environment"]}
    assert rule["AllowedOrigins"] == [environment["DJANGO_CSRF_TRUSTED_ORIGINS"]]


def test_uploads_expire_with_the_history_and_unsent_ones_after_a_day(template):
    rules = {rule["Id"]: rule for rule in uploads_bucket(template)["LifecycleConfiguration"]["Rules"]}
    prefix = f"{storage.PREFIX}/"
    # The tasks keep the default history retention (the template does not set it).
    [cfn_container] = template["Resources"]["TaskDefinition"]["Properties"]["ContainerDefinitions"]
    assert "CHAT_HISTORY_RETENTION" not in {e["Name"] for e in cfn_container["Environment"]}
    assert rules == {
        "expire-with-history": {
            "Id": "expire-with-history",
            "Status": "Enabled",
            "Prefix": prefix,
            "ExpirationInDays": settings.CHAT_HISTORY_RETENTION // 86400,
        },
        "expire-unsent": {
            "Id": "expire-unsent",
            "Status": "Enabled",
            "Prefix": prefix,
            "TagFilters": [{"Key": storage.SENT_TAG, "Value": "no"}],
            "ExpirationInDays": 1,
        },
    }


def test_the_tasks_serve_uploads_through_their_own_cloudfront_with_nosniff(template, task_definition):
    distribution = template["Resources"]["UploadsDistribution"]["Properties"]["DistributionConfig"]
    behavior = distribution["DefaultCacheBehavior"]
    assert behavior["AllowedMethods"] == ["GET", "HEAD"]
    assert behavior["ViewerProtocolPolicy"] == "redirect-to-https"
    headers = template["Resources"][behavior["ResponseHeadersPolicyId"]["Ref"]]["Properties"]
    assert headers["ResponseHeadersPolicyConfig"]["SecurityHeadersConfig"]["ContentTypeOptions"] == {"Override": True}
    [cfn_container] = template["Resources"]["TaskDefinition"]["Properties"]["ContainerDefinitions"]
    environment = {e["Name"]: e["Value"] for e in cfn_container["Environment"]}
    assert environment["CHAT_UPLOADS_BUCKET"] == {"Ref": "UploadsBucket"}
    # Not the static files' domain, which the page's CSP admits for scripts.
    assert environment["CHAT_UPLOADS_CDN_DOMAIN"] == {"Fn::GetAtt": ["UploadsDistribution", "DomainName"]}
    [container] = task_definition["containerDefinitions"]
    names = {e["name"]: e["value"] for e in container["environment"]}
    assert names["CHAT_UPLOADS_BUCKET"] == EXAMPLE_UPLOADS_BUCKET
    assert names["CHAT_UPLOADS_CDN_DOMAIN"] != names["AWS_S3_CUSTOM_DOMAIN"]


def s3_cors_rule(rule: dict) -> dict:
    """A template CorsRule as the PutBucketCors request's CORSRule."""
    names = {"AllowedHeaders": "AllowedHeaders", "AllowedMethods": "AllowedMethods", "MaxAge": "MaxAgeSeconds"}
    return {
        **{names[key]: value for key, value in rule.items() if key != "AllowedOrigins"},
        "AllowedOrigins": [substitute(origin) for origin in rule["AllowedOrigins"]],
    }


def s3_lifecycle_rule(rule: dict) -> dict:
    """A template lifecycle Rule as the PutBucketLifecycleConfiguration request's Rule."""
    tags = rule.get("TagFilters")
    return {
        "ID": rule["Id"],
        "Status": rule["Status"],
        "Filter": {"And": {"Prefix": rule["Prefix"], "Tags": tags}} if tags else {"Prefix": rule["Prefix"]},
        "Expiration": {"Days": rule["ExpirationInDays"]},
    }


def test_the_uploads_bucket_settings_without_cloudformation_are_the_templates(template):
    model = botocore.session.get_session().get_service_model("s3")
    cors = json.loads(UPLOADS_CORS.read_text())
    lifecycle = json.loads(UPLOADS_LIFECYCLE.read_text())
    validate_parameters(
        {"Bucket": EXAMPLE_UPLOADS_BUCKET, "CORSConfiguration": cors},
        model.operation_model("PutBucketCors").input_shape,
    )
    validate_parameters(
        {"Bucket": EXAMPLE_UPLOADS_BUCKET, "LifecycleConfiguration": lifecycle},
        model.operation_model("PutBucketLifecycleConfiguration").input_shape,
    )
    bucket = uploads_bucket(template)
    assert cors == {"CORSRules": [s3_cors_rule(rule) for rule in bucket["CorsConfiguration"]["CorsRules"]]}
    assert lifecycle == {"Rules": [s3_lifecycle_rule(rule) for rule in bucket["LifecycleConfiguration"]["Rules"]]}


def test_the_database_password_comes_from_secrets_manager(template):
    [database] = resources(template, "AWS::RDS::DBInstance").values()
    assert database["MasterUserPassword"] == {
        "Fn::Sub": "{{resolve:secretsmanager:${DatabaseSecret}:SecretString:password}}"
    }
    assert template["Resources"]["DatabaseSecret"]["Properties"]["GenerateSecretString"]["GenerateStringKey"] == (
        "password"
    )
    assert not [name for name in template["Parameters"] if "password" in name.lower()]
    assert database["StorageEncrypted"] and not database["PubliclyAccessible"]


def test_the_load_balancer_keeps_websockets_open_and_checks_healthz(template):
    [balancer] = resources(template, "AWS::ElasticLoadBalancingV2::LoadBalancer").values()
    attributes = {a["Key"]: a["Value"] for a in balancer["LoadBalancerAttributes"]}
    assert int(attributes["idle_timeout.timeout_seconds"]) == ALB_IDLE_TIMEOUT
    [target_group] = resources(template, "AWS::ElasticLoadBalancingV2::TargetGroup").values()
    assert target_group["HealthCheckPath"] == health.PATH
    assert target_group["Port"] == int(procfile_command()[procfile_command().index("-p") + 1])


def test_the_task_definition_is_a_valid_register_task_definition_request(task_definition):
    model = botocore.session.get_session().get_service_model("ecs")
    validate_parameters(task_definition, model.operation_model("RegisterTaskDefinition").input_shape)
    assert task_definition["requiresCompatibilities"] == ["FARGATE"]


def dockerfile_instruction(name: str) -> str:
    text = (ROOT / "Dockerfile").read_text().replace("\\\n", " ")
    [line] = [line for line in text.splitlines() if line.startswith(name + " ")]
    return line.removeprefix(name + " ").strip()


def test_every_way_of_serving_runs_the_procfile_command(template, task_definition):
    command = procfile_command()
    # No --proxy-headers: daphne would take X-Forwarded-For's left-most entry, which the client writes.
    assert command[0] == "daphne" and "--proxy-headers" not in command
    [container] = task_definition["containerDefinitions"]
    assert container["command"] == command
    [cfn_container] = template["Resources"]["TaskDefinition"]["Properties"]["ContainerDefinitions"]
    assert cfn_container["Command"] == command
    assert json.loads(dockerfile_instruction("CMD")) == command
    # The tests serve with the same command, bound to a free port on 127.0.0.1.
    tested = serve_argv(4321)
    assert tested[tested.index("daphne") :] == [
        {"0.0.0.0": "127.0.0.1", "8000": "4321"}.get(arg, arg) for arg in command
    ]
    assert dockerfile_instruction("USER") != "root"
    assert dockerfile_instruction("FROM").startswith("python:3.11-slim")


def test_every_health_check_calls_healthz(template, task_definition):
    url = f"http://127.0.0.1:8000{health.PATH}"
    assert url in dockerfile_instruction("HEALTHCHECK")
    assert url in " ".join(task_definition["containerDefinitions"][0]["healthCheck"]["command"])
    [cfn_container] = template["Resources"]["TaskDefinition"]["Properties"]["ContainerDefinitions"]
    assert url in " ".join(cfn_container["HealthCheck"]["Command"])
    options = yaml.safe_load(EB_CONFIG.read_text())["option_settings"]
    assert options["aws:elasticbeanstalk:environment:process:default"]["HealthCheckPath"] == health.PATH
    assert options["aws:elbv2:loadbalancer"]["IdleTimeout"] == ALB_IDLE_TIMEOUT


def settings_variables() -> set[str]:
    source = (ROOT / "chatsite" / "settings.py").read_text()
    return set(re.findall(r"\benv(?:_bool|_int|_list)?\(\s*\"([A-Z0-9_]+)\"", source))


def test_deployments_set_only_variables_the_settings_read(template, task_definition):
    known = settings_variables()
    [container] = task_definition["containerDefinitions"]
    names = {e["name"] for e in container["environment"]} | {s["name"] for s in container["secrets"]}
    [cfn_container] = template["Resources"]["TaskDefinition"]["Properties"]["ContainerDefinitions"]
    names |= {e["Name"] for e in cfn_container["Environment"]} | {s["Name"] for s in cfn_container["Secrets"]}
    assert names <= known, names - known
    assert {"DJANGO_SECRET_KEY", "DATABASE_PASSWORD"} <= {s["name"] for s in container["secrets"]}


def test_deployments_name_every_table_and_take_the_management_token_from_a_secret(template, task_definition):
    [container] = task_definition["containerDefinitions"]
    environment = {e["name"]: e["value"] for e in container["environment"]}
    assert {setting: environment.get(setting) for setting in TABLES.values()} == {
        "CHAT_CONNECTIONS_TABLE": "ChatConnections",
        "CHAT_INSTANCES_TABLE": "ChatInstances",
        "CHAT_MESSAGES_TABLE": "ChatMessages",
        "CHAT_ROOMS_TABLE": "ChatRooms",
    }
    assert "CHAT_MANAGEMENT_TOKEN" in {s["name"] for s in container["secrets"]}

    [cfn_container] = template["Resources"]["TaskDefinition"]["Properties"]["ContainerDefinitions"]
    cfn_environment = {e["Name"]: e["Value"] for e in cfn_container["Environment"]}
    by_setting = {
        "CHAT_CONNECTIONS_TABLE": "ConnectionsTable",
        "CHAT_INSTANCES_TABLE": "InstancesTable",
        "CHAT_MESSAGES_TABLE": "MessagesTable",
        "CHAT_ROOMS_TABLE": "RoomsTable",
    }
    assert {setting: cfn_environment.get(setting) for setting in TABLES.values()} == {
        setting: {"Ref": resource} for setting, resource in by_setting.items()
    }
    [token] = [s["ValueFrom"] for s in cfn_container["Secrets"] if s["Name"] == "CHAT_MANAGEMENT_TOKEN"]
    assert template["Resources"][token["Ref"]]["Type"] == "AWS::SecretsManager::Secret"
    [readable] = template["Resources"]["TaskExecutionRole"]["Properties"]["Policies"]
    [statement] = readable["PolicyDocument"]["Statement"]
    assert token in statement["Resource"]


def nginx_directives(path: Path) -> list[list[str]]:
    text = re.sub(r"#.*", "", path.read_text())
    return [statement.split() for statement in re.split(r"[;{}]", text) if statement.strip()]


def test_elastic_beanstalk_nginx_passes_websocket_upgrades_to_daphne():
    location = nginx_directives(NGINX / "elasticbeanstalk" / "00_application.conf")
    headers = {d[1].lower(): d[2] for d in location if d[0] == "proxy_set_header"}
    settings = {d[0]: d[1:] for d in location if d[0] != "proxy_set_header"}
    port = procfile_command()[procfile_command().index("-p") + 1]
    # The upstream the location names lists the Procfile's daphne, and only it.
    upstream = nginx_directives(NGINX / "daphne-upstream.conf")
    assert settings["proxy_pass"] == [f"http://{upstream[0][1]}"]
    assert upstream == [["upstream", upstream[0][1]], ["server", f"127.0.0.1:{port}"]]
    assert settings["proxy_http_version"] == ["1.1"]
    assert headers["upgrade"] == "$http_upgrade"
    upgrade_map = nginx_directives(NGINX / "websocket-upgrade.conf")
    assert upgrade_map[0][:3] == ["map", "$http_upgrade", headers["connection"]]
    assert ["default", "upgrade"] in upgrade_map
    for timeout in ("proxy_read_timeout", "proxy_send_timeout"):
        assert int(settings[timeout][0].removesuffix("s")) >= ALB_IDLE_TIMEOUT
