/* placeholder: written by the CTC example task */
int main(void) { return 0; }
