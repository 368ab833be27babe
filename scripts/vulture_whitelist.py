# ruff: noqa: B018  (a whitelist is attribute reads by design)
"""Names vulture cannot see used: read by a framework, a protocol, a test or a benchmark (``make check`` runs
vulture over the package with this file; Textual's and click's conventions are in pyproject's [tool.vulture]).

A name here is used everywhere vulture looks, so keep the list to what a library reads by name."""

from vulture.whitelist_utils import Whitelist

_ = Whitelist()

# requests' and urllib3's attributes, set to change what they do
_._content
_._content_consumed
_.ConnectionCls
_.pool_classes_by_scheme
_.trust_env
# PyYAML's emitter and representer protocol
_.ignore_aliases
_.indentless
_.allow_block_plain
_.allow_flow_plain
_.allow_block
_.allow_single_quoted
# pathspec's and the warnings module's attributes
_.dirs
_.showwarning
# Rich's and Textual's attributes, set to change what they draw
_.justify
_.no_wrap
_.overflow
_.show_root
_.auto_expand
_._updates
_.base_style
# http.server's and socketserver's protocol
_.daemon_threads
_.block_on_close
_.request_queue_size
_.server_version
_.sys_version
# the context-manager protocol's arguments
_.exc_info
# MLflow's deployments plugin and pyfunc model protocols (called by MLflow by name)
_.target_help
_.run_local
_.KitOpsDeploymentClient
_.create_deployment
_.update_deployment
_.list_deployments
_.delete_deployment
_.predict
_.deployment_name
_.load_context
# kit's directory kinds (the order is kit's), the Kitfile's schema fields, and stored records' columns
_.CODE
_.prompts
_.queued_at
_.meaning
# read by tests and benchmarks only
_.added_files
_.layer_count
_.split_weights
_.connect_attempts
# the Python API's results: read by its users (docs/python-api.md)
_.excluded
# a module's __getattr__ (PEP 562): the package's API functions load on first use
_.__getattr__
