variable "name" {
  description = "Name of the role agents' sessions are cut from."
  type        = string
}

variable "broker_role_arn" {
  description = "writ's own role (the broker module's role_arn): the only principal that may assume this role."
  type        = string
}

variable "external_id" {
  description = "An ExternalId writ must present (set the same value as external_id in writ's aws.roles entry); null for none."
  type        = string
  default     = null
}

variable "policy_json" {
  description = <<-EOT
    The most any session of this role may do, as an IAM policy document. Each
    session is narrowed further by writ's session policy to one action on one
    resource; keep this as small as the role's purpose allows.
  EOT
  type        = string
}

variable "max_session_duration" {
  description = "Longest session, in seconds (3600-43200); writ's aws.session_duration_seconds must not exceed it (nor 3600 when writ runs as a role: STS caps chained sessions at an hour)."
  type        = number
  default     = 3600
}

variable "revocation_policy_name" {
  description = "The inline policy writ writes its denies into (aws.revocation_policy_name); Terraform never manages it."
  type        = string
  default     = "writ-revocations"
}

variable "tags" {
  description = "Tags for the role."
  type        = map(string)
  default     = {}
}
