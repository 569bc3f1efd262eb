"""Clinical knowledge loaded from data files (rules/, fhir_profiles/); nothing clinical is a Python literal."""

from cds.knowledge.loader import Knowledge as Knowledge
from cds.knowledge.loader import cached_knowledge as cached_knowledge
from cds.knowledge.loader import load_knowledge as load_knowledge
