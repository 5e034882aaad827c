# An example: writ running as an ECS task, with one target role that can read
# objects in the reports bucket. Every session writ cuts from it is narrowed to
# one object, for minutes.

terraform {
  required_version = ">= 1.5"
  required_providers {
    aws = {
      source  = "hashicorp/aws"
      version = ">= 5.0"
    }
  }
}

variable "reports_bucket" {
  description = "The bucket agents read reports from."
  type        = string
  default     = "reports"
}

module "writ_broker" {
  source = "../broker"
  trusted_principals = {
    type        = "Service"
    identifiers = ["ecs-tasks.amazonaws.com"]
  }
}

data "aws_iam_policy_document" "reports_read" {
  statement {
    effect    = "Allow"
    actions   = ["s3:GetObject"]
    resources = ["arn:aws:s3:::${var.reports_bucket}/*"]
  }
}

module "reports_reader" {
  source          = "../target-role"
  name            = "writ-reports-reader"
  broker_role_arn = module.writ_broker.role_arn
  external_id     = "writ-reports"
  policy_json     = data.aws_iam_policy_document.reports_read.json
}

output "writ_config" {
  description = "The aws section of writ's configuration for these roles."
  value = {
    roles = [{
      resource_pattern = "arn:aws:s3:::${var.reports_bucket}/*"
      role_arn         = module.reports_reader.role_arn
      external_id      = "writ-reports"
    }]
  }
}
