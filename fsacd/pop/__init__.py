"""The screen pop: contacts, CRM lookup, call history, the pop itself."""
