"""Vigil's AWS infrastructure (CDK v2): one stack per stage, one construct per capability."""
