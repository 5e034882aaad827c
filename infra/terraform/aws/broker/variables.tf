variable "name" {
  description = "Name of writ's own IAM role."
  type        = string
  default     = "writ-broker"
}

variable "trusted_principals" {
  description = <<-EOT
    Who may act as writ: the principals allowed to assume writ's role, e.g.
    { type = "Service", identifiers = ["ecs-tasks.amazonaws.com"] } for ECS, or
    { type = "AWS", identifiers = ["arn:aws:iam::111122223333:role/platform-runner"] }.
  EOT
  type = object({
    type        = string
    identifiers = list(string)
  })
}

variable "target_role_arns" {
  description = <<-EOT
    The roles writ may assume for agents and deny sessions on. The default is
    every role under the /writ-targets/ path, which the target-role module uses.
  EOT
  type        = list(string)
  default     = ["arn:aws:iam::*:role/writ-targets/*"]
}

variable "target_boundary_arns" {
  description = <<-EOT
    The permissions boundaries a target role must have for writ to write its
    deny policy on it. The default is every policy under the /writ-targets/
    path, where the target-role module creates each role's boundary.
  EOT
  type        = list(string)
  default     = ["arn:aws:iam::*:policy/writ-targets/*"]
}

variable "tags" {
  description = "Tags for writ's role."
  type        = map(string)
  default     = {}
}
