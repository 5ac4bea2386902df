"""The sidecar injector (Istio's ``istio-sidecar-injector``): a mutating admission webhook that adds meshplane's
capture init container and sidecar container to the pods Istio would inject.

- ``policy``: which pods (Istio's rules); ``annotations``, ``proxy_config``: the pod's Istio annotations as options,
  refused when meshplane cannot honour them; ``containers``: what is added; ``app_probes``: the app's probes
  rewritten to the agent's status port (Istio's probe rewrite); ``patch``: the JSON Patch (pure);
- ``review``: AdmissionReview v1/v1beta1; ``server``: ``POST /inject`` over HTTPS; ``cluster``: what the API server
  says at admission; ``serving``: the serving certificate from the mesh's CA; ``webhook_config``: the
  MutatingWebhookConfiguration and its caBundle; ``cli``: the ``sidecar-injector`` command.
"""

from injector.annotations import SUPPORTED_ANNOTATIONS, InjectionRefused, SidecarOptions, sidecar_options
from injector.patch import injection_patch
from injector.policy import InjectionDecision, injection_decision
from injector.review import AdmissionRequest, ReviewError, parse_review, review_answer
from injector.settings import AdmissionFacts, ControlPlane, InjectorSettings
from injector.webhook_config import WEBHOOK_CONFIGURATION, webhook_configuration

__all__ = [
    "SUPPORTED_ANNOTATIONS",
    "WEBHOOK_CONFIGURATION",
    "AdmissionFacts",
    "AdmissionRequest",
    "ControlPlane",
    "InjectionDecision",
    "InjectionRefused",
    "InjectorSettings",
    "ReviewError",
    "SidecarOptions",
    "injection_decision",
    "injection_patch",
    "parse_review",
    "review_answer",
    "sidecar_options",
    "webhook_configuration",
]
